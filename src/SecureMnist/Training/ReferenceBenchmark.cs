using System.Diagnostics;
using System.Text.Json;

namespace SecureMnist.Training;

public sealed record ReferenceResult(double ImagesPerSecond, double Seconds, int Images, string TorchVersion);

/// <summary>Runs a reference script under bench/ (PyTorch from Debian's python3-torch) and reads its last JSON line.</summary>
public static class ReferenceBenchmark
{
    public const string Python = "/usr/bin/python3";

    public static JsonElement RunScript(string script, IReadOnlyList<string> arguments, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (!File.Exists(Python)) throw new InvalidOperationException($"{Python} not found; install the reference with: apt-get install python3-torch");
        if (!File.Exists(script)) throw new FileNotFoundException($"reference script {script} not found", script);
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start python3");
        using var registration = cancellationToken.Register(() => process.Kill(entireProcessTree: true));
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        cancellationToken.ThrowIfCancellationRequested();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{script} failed (exit {process.ExitCode}): {stderr.Result.Trim()} (is python3-torch installed? apt-get install python3-torch)");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        return json.RootElement.Clone();
    }

    /// <summary>bench/reference_train.py: the seeds' CNN trained with PyTorch on the same files.</summary>
    public static ReferenceResult Train(string script, string dataDirectory, int threads, int epochs, CancellationToken cancellationToken = default)
    {
        var root = RunScript(script, [dataDirectory, "--threads", $"{threads}", "--epochs", $"{epochs}"], cancellationToken);
        return new ReferenceResult(root.GetProperty("images_per_second").GetDouble(), root.GetProperty("seconds").GetDouble(),
            root.GetProperty("images").GetInt32(), root.GetProperty("torch").GetString() ?? "unknown");
    }
}
