using SecureMnist.Data;
using SecureMnist.IO;

namespace SecureMnist.Defenses;

/// <summary>Removes flagged samples from a training set.</summary>
public static class Sanitizer
{
    public const string RemovedFile = "removed.json";

    /// <summary>The training set without the flagged indices, and the kept indices (into the original) in order.</summary>
    public static (LabeledImages Train, int[] Kept) Remove(LabeledImages train, IEnumerable<int> flagged)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(flagged);
        var removed = flagged.ToHashSet();
        foreach (var index in removed)
            if (index < 0 || index >= train.Count) throw new ArgumentOutOfRangeException(nameof(flagged), index, $"flagged index outside the {train.Count} training images");
        if (removed.Count >= train.Count) throw new ArgumentException("every training sample is flagged; nothing would be left to train on");
        var kept = Enumerable.Range(0, train.Count).Where(i => !removed.Contains(i)).ToArray();
        return (train.Select(kept), kept);
    }

    /// <summary>Writes the sanitized copy of a dataset as its own dataset folder, with the removed indices beside it.</summary>
    public static void Write(Dataset dataset, PoisonDetectionReport detection, string targetDirectory)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(detection);
        var removed = detection.Flagged.Select(f => f.Index).Order().ToArray();
        var (train, _) = Remove(dataset.Train, removed);
        DerivedDataset.Write(dataset, train, targetDirectory, $"{dataset.Name}-sanitized",
            $"{dataset.Name} without the {removed.Length} samples flagged by {detection.Options.Method}",
            staging => JsonFormat.Save(Path.Combine(staging, RemovedFile), new { source = dataset.Directory, sourceDigests = dataset.Digests, removed }));
    }
}
