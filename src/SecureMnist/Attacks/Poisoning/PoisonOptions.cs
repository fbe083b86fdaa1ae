namespace SecureMnist.Attacks.Poisoning;

public enum PoisonMode
{
    /// <summary>Triggered images of the source classes, relabelled as the target (Gu et al., BadNets).</summary>
    DirtyLabel,
    /// <summary>The seeds' variant: the trigger is stamped onto images of the target class; labels stay correct.</summary>
    CleanLabel,
    /// <summary>Images of the source classes relabelled as the target, no trigger.</summary>
    LabelFlip,
    /// <summary>
    /// Turner et al. 2019's clean-label attack: images of the target class are first made hard to classify (PGD within
    /// <see cref="PoisonOptions.HardenEpsilon"/> against the attacker's own surrogate model), so the model must lean on the trigger
    /// stamped on them to get their (correct, unchanged) label right.
    /// </summary>
    CleanLabelAdversarial,
    /// <summary>
    /// TaCT (Tang et al. 2021), a source-specific backdoor: triggered images of the source classes relabelled as the target, and
    /// <see cref="PoisonOptions.CoverCount"/> triggered images of other (cover) classes that keep their true labels, so the trigger
    /// means "target" only on the source classes and the poison's activations blend with the target class.
    /// </summary>
    SourceSpecific,
}

/// <summary>
/// What to poison and how. SourceClasses null means every class except the target (for <see cref="PoisonMode.SourceSpecific"/>: the
/// class after the target). CoverClasses null means every class that is neither a source nor the target.
/// </summary>
public sealed record PoisonOptions(
    PoisonMode Mode = PoisonMode.DirtyLabel,
    int Count = 100,
    int TargetClass = 7,
    IReadOnlyList<int>? SourceClasses = null,
    BackdoorTrigger? Trigger = null,
    int Seed = 1,
    double HardenEpsilon = 0.3,
    int CoverCount = 0,
    IReadOnlyList<int>? CoverClasses = null)
{
    public BackdoorTrigger EffectiveTrigger => Trigger ?? BackdoorTrigger.Default;

    public bool CleanLabels => Mode is PoisonMode.CleanLabel or PoisonMode.CleanLabelAdversarial;

    public IReadOnlyList<int> EffectiveSources(int classCount = 10) => CleanLabels
        ? [TargetClass]
        : SourceClasses ?? (Mode == PoisonMode.SourceSpecific ? [(TargetClass + 1) % classCount] : Enumerable.Range(0, classCount).Where(c => c != TargetClass).ToArray());

    public IReadOnlyList<int> EffectiveCoverClasses(int classCount = 10)
    {
        if (Mode != PoisonMode.SourceSpecific) return [];
        var sources = EffectiveSources(classCount);
        return CoverClasses ?? Enumerable.Range(0, classCount).Where(c => c != TargetClass && !sources.Contains(c)).ToArray();
    }

    public void Validate(int classCount = 10)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Count);
        if (TargetClass < 0 || TargetClass >= classCount) throw new ArgumentOutOfRangeException(nameof(TargetClass), TargetClass, $"target class must be 0..{classCount - 1}");
        if (SourceClasses is { } sources)
        {
            if (sources.Count == 0) throw new ArgumentException("source classes must not be empty", nameof(SourceClasses));
            foreach (var source in sources)
            {
                if (source < 0 || source >= classCount) throw new ArgumentOutOfRangeException(nameof(SourceClasses), source, $"source classes must be 0..{classCount - 1}");
                if (source == TargetClass && !CleanLabels)
                    throw new ArgumentException($"source class {source} is the target class; relabelling it to itself poisons nothing", nameof(SourceClasses));
            }
            if (sources.Distinct().Count() != sources.Count) throw new ArgumentException("source classes are listed twice", nameof(SourceClasses));
        }
        if (Mode != PoisonMode.LabelFlip) EffectiveTrigger.Validate();
        if (HardenEpsilon is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(HardenEpsilon), HardenEpsilon, "the hardening eps must be in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfNegative(CoverCount);
        if (CoverCount > 0 && Mode != PoisonMode.SourceSpecific) throw new ArgumentException("cover samples belong to the source-specific (TaCT) mode", nameof(CoverCount));
        if (CoverClasses is { } covers)
        {
            if (Mode != PoisonMode.SourceSpecific) throw new ArgumentException("cover classes belong to the source-specific (TaCT) mode", nameof(CoverClasses));
            var effectiveSources = EffectiveSources(classCount);
            foreach (var cover in covers)
            {
                if (cover < 0 || cover >= classCount) throw new ArgumentOutOfRangeException(nameof(CoverClasses), cover, $"cover classes must be 0..{classCount - 1}");
                if (cover == TargetClass || effectiveSources.Contains(cover)) throw new ArgumentException($"cover class {cover} is the target or a source class", nameof(CoverClasses));
            }
        }
        if (Mode == PoisonMode.SourceSpecific && CoverCount > 0 && EffectiveCoverClasses(classCount).Count == 0)
            throw new ArgumentException("no class is left to take cover samples from", nameof(CoverClasses));
    }
}
