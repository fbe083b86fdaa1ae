using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.IO;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Poisoning;

/// <summary>A poisoned training set and the record of what was changed.</summary>
public sealed record PoisonedTrainingSet(LabeledImages Train, PoisonManifest Manifest);

/// <summary>Writes poisoned copies of a training set: backdoor (dirty- or clean-label) and label flipping.</summary>
public static class DataPoisoner
{
    /// <summary>
    /// Chooses <see cref="PoisonOptions.Count"/> samples of the source classes (seeded) and changes them; for a source-specific backdoor
    /// also <see cref="PoisonOptions.CoverCount"/> cover samples of the cover classes. <paramref name="surrogate"/> is the attacker's own
    /// model, which the clean-label adversarial mode perturbs the target images against (it is required there and unused elsewhere).
    /// </summary>
    public static PoisonedTrainingSet Poison(Dataset clean, PoisonOptions options, Module<Tensor, Tensor>? surrogate = null)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Mode == PoisonMode.CleanLabelAdversarial && surrogate is null)
            throw new ArgumentException("the clean-label adversarial mode perturbs the target images against the attacker's own model: give a surrogate model");
        var train = clean.Train;
        var random = new SeededRandom(options.Seed);
        var sources = options.EffectiveSources();
        var chosen = Choose(train, sources, options.Count, random, "source");
        var coverClasses = options.EffectiveCoverClasses();
        var covers = options.CoverCount > 0 ? Choose(train, coverClasses, options.CoverCount, random, "cover") : [];

        var pixels = (byte[])train.Pixels.Clone();
        var labels = (byte[])train.Labels.Clone();
        if (options.Mode == PoisonMode.CleanLabelAdversarial) Harden(pixels, train, chosen, surrogate!, options);
        var trigger = options.Mode == PoisonMode.LabelFlip ? null : options.EffectiveTrigger;
        var samples = new List<PoisonedSample>(chosen.Length + covers.Length);
        foreach (var index in chosen)
        {
            trigger?.Apply(pixels.AsSpan(index * train.PixelsPerImage, train.PixelsPerImage), train.Rows, train.Columns);
            var original = labels[index];
            if (!options.CleanLabels) labels[index] = (byte)options.TargetClass;
            samples.Add(new PoisonedSample(index, original, labels[index], trigger is not null));
        }
        foreach (var index in covers)
        {
            trigger!.Apply(pixels.AsSpan(index * train.PixelsPerImage, train.PixelsPerImage), train.Rows, train.Columns);
            samples.Add(new PoisonedSample(index, labels[index], labels[index], Triggered: true, Cover: true));
        }
        samples.Sort((a, b) => a.Index.CompareTo(b.Index));
        var manifest = new PoisonManifest(options.Mode, options.TargetClass, sources, trigger, options.Seed,
            clean.Name, clean.Digests, train.Count, samples, options.Mode == PoisonMode.CleanLabelAdversarial ? options.HardenEpsilon : null,
            options.Mode == PoisonMode.SourceSpecific ? coverClasses : null);
        return new PoisonedTrainingSet(new LabeledImages(pixels, labels, train.Rows, train.Columns), manifest);
    }

    private static int[] Choose(LabeledImages train, IReadOnlyList<int> classes, int count, SeededRandom random, string what)
    {
        var candidates = Enumerable.Range(0, train.Count).Where(i => classes.Contains(train.Labels[i])).ToArray();
        if (candidates.Length < count)
            throw new ArgumentException($"only {candidates.Length} training images belong to the {what} classes ({string.Join(",", classes)}); cannot poison {count}");
        random.Shuffle(candidates.AsSpan());
        var chosen = candidates[..count];
        Array.Sort(chosen);
        return chosen;
    }

    /// <summary>Turner et al.: PGD (L-inf, 40 steps, random start) away from each chosen image's true label on the surrogate, stored back as bytes.</summary>
    private static void Harden(byte[] pixels, LabeledImages train, int[] chosen, Module<Tensor, Tensor> surrogate, PoisonOptions options)
    {
        var subset = train.Select(chosen);
        using var classifier = new NetworkClassifier(surrogate);
        var pgd = new Pgd(new PgdOptions(options.HardenEpsilon, 2.5 * options.HardenEpsilon / 40, 40, Seed: options.Seed));
        for (var start = 0; start < chosen.Length; start += 500)
        {
            using var scope = NewDisposeScope();
            var length = Math.Min(500, chosen.Length - start);
            var part = subset.Select([.. Enumerable.Range(start, length)]);
            var hardened = pgd.Generate(classifier, part.ImagesTensor(), part.LabelsTensor());
            var bytes = (hardened.reshape(length, -1) * 255).round().clamp(0, 255).to(ScalarType.Byte).data<byte>().ToArray();
            for (var k = 0; k < length; k++)
                bytes.AsSpan(k * train.PixelsPerImage, train.PixelsPerImage).CopyTo(pixels.AsSpan(chosen[start + k] * train.PixelsPerImage, train.PixelsPerImage));
        }
    }

    /// <summary>
    /// Writes the poisoned copy as a dataset folder: poisoned training files, the untouched test files, a
    /// manifest of the new digests under a name that is not the original's, and poison.json. All or nothing.
    /// </summary>
    public static PoisonManifest Write(Dataset clean, PoisonOptions options, string targetDirectory, Module<Tensor, Tensor>? surrogate = null)
    {
        var poisoned = Poison(clean, options, surrogate);
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
        PoisonMode.CleanLabelAdversarial => "clean-label-adversarial",
        PoisonMode.SourceSpecific => "source-specific",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };
}
