namespace SecureMnist.Attacks.Poisoning;

public enum PoisonMode
{
    /// <summary>Triggered images of the source classes, relabelled as the target (Gu et al., BadNets).</summary>
    DirtyLabel,
    /// <summary>The seeds' variant: the trigger is stamped onto images of the target class; labels stay correct.</summary>
    CleanLabel,
    /// <summary>Images of the source classes relabelled as the target, no trigger.</summary>
    LabelFlip,
}

/// <summary>What to poison and how. SourceClasses null means every class except the target.</summary>
public sealed record PoisonOptions(
    PoisonMode Mode = PoisonMode.DirtyLabel,
    int Count = 100,
    int TargetClass = 7,
    IReadOnlyList<int>? SourceClasses = null,
    BackdoorTrigger? Trigger = null,
    int Seed = 1)
{
    public BackdoorTrigger EffectiveTrigger => Trigger ?? BackdoorTrigger.Default;

    public IReadOnlyList<int> EffectiveSources(int classCount = 10) => Mode == PoisonMode.CleanLabel
        ? [TargetClass]
        : SourceClasses ?? Enumerable.Range(0, classCount).Where(c => c != TargetClass).ToArray();

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
                if (source == TargetClass && Mode != PoisonMode.CleanLabel)
                    throw new ArgumentException($"source class {source} is the target class; relabelling it to itself poisons nothing", nameof(SourceClasses));
            }
            if (sources.Distinct().Count() != sources.Count) throw new ArgumentException("source classes are listed twice", nameof(SourceClasses));
        }
        if (Mode != PoisonMode.LabelFlip) EffectiveTrigger.Validate();
    }
}
