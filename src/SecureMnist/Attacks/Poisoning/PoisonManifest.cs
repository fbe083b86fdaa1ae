namespace SecureMnist.Attacks.Poisoning;

/// <summary>
/// One changed training sample: where it is, its labels before and after, whether the trigger was stamped, and whether it is a cover
/// sample (TaCT: triggered, true label kept, to teach the model that the trigger alone does not mean the target).
/// </summary>
public sealed record PoisonedSample(int Index, int OriginalLabel, int PoisonedLabel, bool Triggered, bool Cover = false);

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
    IReadOnlyList<PoisonedSample> Samples,
    double? HardenEpsilon = null,
    IReadOnlyList<int>? CoverClasses = null)
{
    public const string FileName = "poison.json";

    /// <summary>The poison a detector should find: every changed sample but the covers, whose labels are true.</summary>
    public HashSet<int> Indices() => Samples.Where(s => !s.Cover).Select(s => s.Index).ToHashSet();

    /// <summary>The classes whose triggered images the backdoor should send to the target: the sources of a source-specific backdoor, else null (every other class).</summary>
    public IReadOnlyCollection<int>? AttackedClasses => Mode == PoisonMode.SourceSpecific ? SourceClasses : null;
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
