using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.IO;

namespace SecureMnist.Assessment;

/// <summary>
/// A measured number with its unit and what it means; every number in a report is one of these. An accuracy measured on n images
/// carries its 95% interval (<see cref="Interval95"/>), which the report prints beside it.
/// </summary>
public sealed record Metric(double Value, string Unit, string Label, Evaluation.Interval? Interval95 = null)
{
    public string Format() => Unit switch
    {
        "percent" when Interval95 is { } ci => Percent(Value) + $" (95% CI {Percent(ci.Low)}–{Percent(ci.High)})",
        "percent" => Percent(Value),
        "seconds" => Value.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " s",
        "hours" => Value.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) + " h",
        "ratio" => Value.ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
        _ => Value.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Another value in this metric's unit (a threshold beside the measured figure), without an interval.</summary>
    public string FormatValue(double value) => (this with { Value = value, Interval95 = null }).Format();

    private static string Percent(double fraction) => (100 * fraction).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "%";

    public static Metric Percent(double fraction, string label) => new(fraction, "percent", label);

    /// <summary>A share of <paramref name="trials"/> independent images, with its Wilson 95% interval.</summary>
    public static Metric Proportion(double fraction, int trials, string label)
    {
        var successes = (long)Math.Round(fraction * trials);
        return new(fraction, "percent", label, trials > 0 ? Evaluation.BinomialInterval.Wilson(successes, trials) : null);
    }

    public static Metric Count(double value, string label) => new(value, "count", label);
}

/// <summary>What a finished stage left: its fingerprint, timing, metrics, files, and free-form details.</summary>
public sealed record StageResult(string Stage, string Fingerprint, double Seconds, DateTimeOffset FinishedUtc,
    IReadOnlyDictionary<string, Metric> Metrics, IReadOnlyDictionary<string, string> Files, JsonNode? Details);

/// <summary>
/// Stages cached by their inputs: a stage's fingerprint hashes its settings and the fingerprints of the stages it
/// reads, so a rerun skips finished stages whose inputs did not change and redoes the rest. An interrupted stage
/// leaves a pending marker with its fingerprint, so the next run resumes it (training continues from its checkpoint).
/// </summary>
public sealed class StageStore(string root)
{
    private const string ResultFile = "stage.json";
    private const string PendingFile = "pending.json";

    public string Root { get; } = root;

    public string Directory(string stage) => Path.Combine(Root, "stages", stage);

    public static string Fingerprint(string stage, object settings, params string[] upstream)
    {
        var text = $"{stage}\n{JsonSerializer.Serialize(settings, JsonFormat.Documents)}\n{string.Join("\n", upstream)}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];
    }

    public StageResult? Finished(string stage, string fingerprint)
    {
        var path = Path.Combine(Directory(stage), ResultFile);
        if (!File.Exists(path)) return null;
        try
        {
            var result = JsonFormat.Load<StageResult>(path);
            return result.Fingerprint == fingerprint ? result : null;
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>Prepares the stage folder: kept when an interrupted run of the same inputs can resume, emptied otherwise.</summary>
    public bool Begin(string stage, string fingerprint)
    {
        var directory = Directory(stage);
        var pending = Path.Combine(directory, PendingFile);
        var resumable = File.Exists(pending) && File.ReadAllText(pending).Trim() == fingerprint;
        if (!resumable && System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
        System.IO.Directory.CreateDirectory(directory);
        AtomicFile.WriteAllText(pending, fingerprint);
        return resumable;
    }

    public void Complete(StageResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        JsonFormat.Save(Path.Combine(Directory(result.Stage), ResultFile), result);
        File.Delete(Path.Combine(Directory(result.Stage), PendingFile));
    }

    /// <summary>
    /// One finished part of a running stage (one defence of several, say), kept in the stage's folder so that an
    /// interrupted stage resumes after its last finished part instead of redoing it. The folder survives an interruption
    /// only when the stage's inputs are unchanged (see <see cref="Begin"/>), so a kept part always matches them.
    /// </summary>
    public T Part<T>(string stage, string part, Func<T> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var path = Path.Combine(Directory(stage), $"part-{part}.json");
        if (File.Exists(path))
        {
            try
            {
                return JsonFormat.Load<T>(path);
            }
            catch (InvalidDataException)
            {
                // An unreadable part is redone.
            }
        }
        var result = run();
        JsonFormat.Save(path, result);
        return result;
    }
}
