using SecureMnist.Data;
using SecureMnist.IO;

namespace SecureMnist.Attacks.Poisoning;

/// <summary>A poisoned training set and the record of what was changed.</summary>
public sealed record PoisonedTrainingSet(LabeledImages Train, PoisonManifest Manifest);

/// <summary>Writes poisoned copies of a training set: backdoor (dirty- or clean-label) and label flipping.</summary>
public static class DataPoisoner
{
    /// <summary>Chooses <see cref="PoisonOptions.Count"/> samples of the source classes (seeded) and changes them.</summary>
    public static PoisonedTrainingSet Poison(Dataset clean, PoisonOptions options)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var train = clean.Train;
        var sources = options.EffectiveSources();
        var candidates = Enumerable.Range(0, train.Count).Where(i => sources.Contains(train.Labels[i])).ToArray();
        if (candidates.Length < options.Count)
            throw new ArgumentException($"only {candidates.Length} training images belong to the source classes ({string.Join(",", sources)}); cannot poison {options.Count}");
        new SeededRandom(options.Seed).Shuffle(candidates);
        var chosen = candidates[..options.Count];
        Array.Sort(chosen);

        var pixels = (byte[])train.Pixels.Clone();
        var labels = (byte[])train.Labels.Clone();
        var trigger = options.Mode == PoisonMode.LabelFlip ? null : options.EffectiveTrigger;
        var samples = new List<PoisonedSample>(chosen.Length);
        foreach (var index in chosen)
        {
            trigger?.Apply(pixels.AsSpan(index * train.PixelsPerImage, train.PixelsPerImage), train.Rows, train.Columns);
            var original = labels[index];
            if (options.Mode != PoisonMode.CleanLabel) labels[index] = (byte)options.TargetClass;
            samples.Add(new PoisonedSample(index, original, labels[index], trigger is not null));
        }
        var manifest = new PoisonManifest(options.Mode, options.TargetClass, sources, trigger, options.Seed,
            clean.Name, clean.Digests, train.Count, samples);
        return new PoisonedTrainingSet(new LabeledImages(pixels, labels, train.Rows, train.Columns), manifest);
    }

    /// <summary>
    /// Writes the poisoned copy as a dataset folder: poisoned training files, the untouched test files, a
    /// manifest of the new digests under a name that is not the original's, and poison.json. All or nothing.
    /// </summary>
    public static PoisonManifest Write(Dataset clean, PoisonOptions options, string targetDirectory)
    {
        var poisoned = Poison(clean, options);
        DerivedDataset.Write(clean, poisoned.Train, targetDirectory, $"{clean.Name}-poisoned-{Kebab(options.Mode)}",
            $"{clean.Name} with {options.Count} {Kebab(options.Mode)} poisoned training samples (target {options.TargetClass}, seed {options.Seed})",
            staging => JsonFormat.Save(Path.Combine(staging, PoisonManifest.FileName), poisoned.Manifest));
        return poisoned.Manifest;
    }

    public static string Kebab(PoisonMode mode) => mode switch
    {
        PoisonMode.DirtyLabel => "dirty-label",
        PoisonMode.CleanLabel => "clean-label",
        PoisonMode.LabelFlip => "label-flip",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };
}
