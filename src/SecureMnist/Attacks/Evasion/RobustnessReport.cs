using SecureMnist.Evaluation;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Mean and median norms of the perturbations that broke correctly classified inputs.</summary>
public sealed record PerturbationStats(int Count, double MeanLInf, double MedianLInf, double MeanL2, double MedianL2);

/// <summary>
/// One attack of a worst-case run: how many inputs it broke that the earlier attacks had not. <paramref name="ImageSteps"/> counts the
/// images the model evaluated for it (a gradient step or a query costs one per image), the work behind <paramref name="Seconds"/>.
/// </summary>
public sealed record AttackStage(string Attack, int Attempted, int Broken, double RobustAccuracyAfter, double Seconds, double ImagesPerSecond,
    long ImageSteps = 0, double ImageStepsPerSecond = 0);

public sealed record ClassRobustness(int Label, int Support, double CleanAccuracy, double RobustAccuracy);

/// <summary>
/// Robustness of a model under the per-input worst case of a list of attacks: an input counts as robust
/// only if it is classified correctly and no attack changes that.
/// </summary>
public sealed record RobustnessReport(
    int Images,
    double CleanAccuracy,
    double RobustAccuracy,
    /// <summary>Share of correctly classified inputs that some attack broke.</summary>
    double AttackSuccessRate,
    PerturbationStats Perturbation,
    IReadOnlyList<AttackStage> Stages,
    IReadOnlyList<ClassRobustness> Classes,
    double Seconds,
    double ImagesPerSecond)
{
    /// <summary>
    /// The 95% Wilson interval of <see cref="RobustAccuracy"/> over the <see cref="Images"/> attacked inputs: the test set's share of the
    /// uncertainty (another training seed adds its own). None for an empty run.
    /// </summary>
    public Interval? RobustInterval95 => Images > 0 ? BinomialInterval.Wilson((long)Math.Round(RobustAccuracy * Images), Images) : null;
}

/// <summary>A report plus the examples behind it: the strongest adversarial example per input (the clean image if none).</summary>
public sealed record RobustnessRun(
    RobustnessReport Report,
    float[] Adversarial,
    byte[] Labels,
    int[] CleanPredictions,
    int[] AdversarialPredictions,
    string?[] BrokenBy)
{
    /// <summary>Per input: classified correctly, and still after the attacks.</summary>
    public bool[] Robust() => Enumerable.Range(0, Labels.Length)
        .Select(i => CleanPredictions[i] == Labels[i] && AdversarialPredictions[i] == Labels[i]).ToArray();

    /// <summary>
    /// The per-input worst case of several runs on the same inputs: an input is robust only if it is robust in every run. This, not the
    /// lowest of the runs' accuracies, is the worst case: two attacks that break different inputs together break both sets.
    /// </summary>
    public static bool[] RobustUnderAll(IReadOnlyList<bool[]> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new ArgumentException("no run to combine", nameof(runs));
        var count = runs[0].Length;
        if (runs.Any(r => r.Length != count)) throw new ArgumentException("the runs cover different numbers of inputs", nameof(runs));
        return Enumerable.Range(0, count).Select(i => runs.All(r => r[i])).ToArray();
    }

    /// <summary>The share of inputs robust in every run.</summary>
    public static double WorstCaseAccuracy(IReadOnlyList<bool[]> runs)
    {
        var robust = RobustUnderAll(runs);
        return robust.Length == 0 ? 0 : (double)robust.Count(r => r) / robust.Length;
    }
}

/// <summary>An attack produced an example outside its threat model or outside [0, 1]: a bug, never a result.</summary>
public sealed class AttackInvariantException(string message) : Exception(message);
