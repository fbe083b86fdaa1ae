namespace SecureMnist.Attacks.Poisoning;

/// <summary>One changed training sample: where it is, its labels before and after, whether the trigger was stamped.</summary>
public sealed record PoisonedSample(int Index, int OriginalLabel, int PoisonedLabel, bool Triggered);

/// <summary>
/// The ground truth of a poisoning experiment, written beside the poisoned copy (poison.json) so
/// detectors and sanitizers can be scored. A defender would never have it; the tools use it only to score.
/// </summary>
public sealed record PoisonManifest(
    PoisonMode Mode,
    int TargetClass,
    IReadOnlyList<int> SourceClasses,
    BackdoorTrigger? Trigger,
    int Seed,
    string BaseDataset,
    IReadOnlyDictionary<string, string> BaseDigests,
    int TrainImages,
    IReadOnlyList<PoisonedSample> Samples)
{
    public const string FileName = "poison.json";

    public HashSet<int> Indices() => Samples.Select(s => s.Index).ToHashSet();
}

public static class PoisonManifests
{
    /// <summary>The poison.json of a dataset folder, or null when the folder has none (a clean or unknown dataset).</summary>
    public static PoisonManifest? TryLoad(string datasetDirectory)
    {
        var path = Path.Combine(datasetDirectory, PoisonManifest.FileName);
        return File.Exists(path) ? IO.JsonFormat.Load<PoisonManifest>(path) : null;
    }
}
