using System.Diagnostics;
using System.Text.Json;

namespace SecureMnist.Training;

public sealed record ReferenceResult(double ImagesPerSecond, double Seconds, int Images, string TorchVersion);

/// <summary>Runs bench/reference_train.py (PyTorch, same network and data) and reads its JSON line.</summary>
public static class ReferenceBenchmark
{
    public const string Python = "/usr/bin/python3";

    public static ReferenceResult Run(string script, string dataDirectory, int threads, int epochs, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Python)) throw new InvalidOperationException($"{Python} not found; install the reference with: apt-get install python3-torch");
        if (!File.Exists(script)) throw new FileNotFoundException($"reference script {script} not found", script);
        var start = new ProcessStartInfo(Python)
        {
            ArgumentList = { script, dataDirectory, "--threads", threads.ToString(System.Globalization.CultureInfo.InvariantCulture), "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start python3");
        using var registration = cancellationToken.Register(() => process.Kill(entireProcessTree: true));
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        cancellationToken.ThrowIfCancellationRequested();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"reference script failed (exit {process.ExitCode}): {stderr.Result.Trim()} (is python3-torch installed? apt-get install python3-torch)");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        return new ReferenceResult(root.GetProperty("images_per_second").GetDouble(), root.GetProperty("seconds").GetDouble(),
            root.GetProperty("images").GetInt32(), root.GetProperty("torch").GetString() ?? "unknown");
    }
}
