using SecureMnist.Fuzzing;
using SharpFuzz;

// Usage: SecureMnist.Fuzz TARGET. Under afl-fuzz (which sets __AFL_SHM_ID) this is a persistent fork server that reads
// each input from stdin; run alone, it parses stdin once and says what the target made of it. In the instrumented copy,
// library code may run only inside Fuzzer.Run (its coverage map exists only there), so the target is looked up inside.
if (args.Length != 1 || args[0] is "-h" or "--help")
{
    await Console.Error.WriteLineAsync("usage: SecureMnist.Fuzz TARGET < input (./securemnist-fuzz --list names the targets)").ConfigureAwait(false);
    return args.Length == 1 ? 0 : 2;
}
var name = args[0];
if (name == "--write-seeds")
{
    // fuzz/make-corpus: the uninstrumented build writes the seeds its library writers make.
    await SecureMnist.Fuzz.SeedCorpus.WriteAsync(Environment.GetEnvironmentVariable("SECUREMNIST_CORPUS") ?? "fuzz/corpus").ConfigureAwait(false);
    return 0;
}
var scratch = Path.Combine(Path.GetTempPath(), $"securemnist-fuzz-{Environment.ProcessId}");
Directory.CreateDirectory(scratch);
var alone = Environment.GetEnvironmentVariable("__AFL_SHM_ID") is null;
try
{
    Fuzzer.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var refusal = FuzzTargets.Get(name).Run(buffer.ToArray(), scratch);
        if (alone) Console.WriteLine(refusal is null ? "accepted" : $"refused: {refusal}");
    });
}
finally
{
    Directory.Delete(scratch, recursive: true);
}
return 0;
