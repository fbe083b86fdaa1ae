using System.Diagnostics;
using SecureMnist.Modeling;
using SecureMnist.Security;
using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Security;

/// <summary>verify --provenance: each link of the chain, and a break in each.</summary>
public sealed class ProvenanceTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();
    private readonly RunRecord record;
    private readonly string runs;

    public ProvenanceTests()
    {
        var options = new TrainingOptions { Architecture = Architectures.LinearSoftmax, Epochs = 1, TrainSubset = 500 };
        runs = Path.Combine(directory, "runs");
        var trained = TrainingPipeline.TrainAndPackage(options, TestPaths.Mnist(), Path.Combine(runs, "tiny"), Path.Combine(directory, "trained"), key, resume: false);
        trained.Training.Network.Dispose();
        record = trained.Training.Record with { CodeVersion = HeadCommit() };
    }

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    private static string HeadCommit()
    {
        var start = new ProcessStartInfo("git", ["-C", TestPaths.RepositoryRoot, "rev-parse", "HEAD"]) { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        var commit = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return commit;
    }

    private ProvenanceReport Package(RunRecord training, IReadOnlyDictionary<string, string>? digests = null, bool writeRunRecord = true)
    {
        manual_seed(1);
        using var network = Architectures.Create(Architectures.LinearSoftmax);
        var path = Path.Combine(directory, "package-" + Guid.NewGuid().ToString("N")[..8]);
        ModelPackage.Write(path, Architectures.LinearSoftmax, network, new ModelPackage.Provenance(training.Dataset, digests ?? training.DatasetDigests, training, null), key);
        if (writeRunRecord)
        {
            Directory.CreateDirectory(Path.Combine(runs, training.RunId));
            File.WriteAllBytes(Path.Combine(runs, training.RunId, Trainer.RunRecordFile),
                System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(training, SecurityJsonContext.Default.RunRecord));
        }
        return ProvenanceVerifier.Verify(path, key.PublicKey, TestPaths.DataRoot, runs, TestPaths.RepositoryRoot);
    }

    private static ProvenanceCheck Link(ProvenanceReport report, string name) => report.Checks.Single(c => c.Name == name);

    [Fact]
    public void A_record_names_the_cpus_vector_extensions_so_hosts_are_compared_like_for_like()
    {
        // An AVX2 host and an AVX-512 BF16 host of one CPU family: the same name, twice the speed apart.
        Assert.Equal(["avx", "avx2", "fma"], MachineInfo.VectorExtensionsOf("flags\t\t: fpu vme sse4_2 avx f16c fma avx2 bmi2"));
        Assert.Equal(["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"],
            MachineInfo.VectorExtensionsOf("flags : avx512_bf16 avx512_vnni avx512vl avx512bw avx512f fma avx2 avx"));
        Assert.Empty(MachineInfo.VectorExtensionsOf("flags : fpu sse2"));
        // Records written before the field existed still read.
        var old = System.Text.Json.JsonSerializer.Deserialize<MachineInfo>("""{"Os":"l","Cpu":"c","LogicalCores":2,"TorchThreads":2,"DotnetVersion":"d","TorchSharpVersion":"t"}""");
        Assert.Null(old!.VectorExtensions);
        if (File.Exists("/proc/cpuinfo")) Assert.Contains("avx", MachineInfo.Current(1).VectorExtensions ?? []);
    }

    [Fact]
    public void A_package_from_committed_code_and_verified_data_holds_its_chain()
    {
        var report = Package(record with { RunId = "clean" });
        Assert.True(report.Ok, string.Join("\n", report.Checks));
        Assert.All(report.Checks, c => Assert.Equal(CheckStatus.Passed, c.Status));
    }

    [Fact]
    public void An_edited_run_record_on_disk_breaks_the_chain()
    {
        var report = Package(record with { RunId = "edited" });
        Assert.True(report.Ok);
        var runFile = Path.Combine(runs, "edited", Trainer.RunRecordFile);
        File.WriteAllText(runFile, File.ReadAllText(runFile).Replace("\"trainImages\": 500", "\"trainImages\": 60000", StringComparison.Ordinal));
        var again = ProvenanceVerifier.Verify(report.Package, key.PublicKey, TestPaths.DataRoot, runs, TestPaths.RepositoryRoot);
        Assert.Equal(CheckStatus.Failed, Link(again, "run record on disk").Status);
    }

    [Fact]
    public void Digests_that_are_not_the_installed_datasets_break_the_chain()
    {
        var forged = record.DatasetDigests.ToDictionary(kv => kv.Key, kv => new string('0', 64));
        var report = Package(record with { RunId = "forged", DatasetDigests = forged }, forged);
        Assert.False(report.Ok);
        Assert.Contains("different mnist", Link(report, "dataset").Detail);
    }

    [Fact]
    public void Manifest_digests_that_disagree_with_the_training_record_break_the_chain()
    {
        var forged = record.DatasetDigests.ToDictionary(kv => kv.Key, kv => new string('0', 64));
        var report = Package(record with { RunId = "mixed" }, forged);
        Assert.Equal(CheckStatus.Failed, Link(report, "dataset").Status);
    }

    [Theory]
    [InlineData("0000000000000000000000000000000000000000", "is not in")]
    [InlineData("+modified", "uncommitted changes")]
    [InlineData("unknown", "is not a commit id")]
    public void Untraceable_code_breaks_the_chain(string version, string reason)
    {
        var codeVersion = version == "+modified" ? record.CodeVersion + version : version;
        var report = Package(record with { RunId = "code-" + version.Trim('+'), CodeVersion = codeVersion });
        Assert.False(report.Ok);
        Assert.Contains(reason, Link(report, "code version").Detail);
    }
}
