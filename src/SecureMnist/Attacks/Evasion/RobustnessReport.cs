namespace SecureMnist.Attacks.Evasion;

/// <summary>Mean and median norms of the perturbations that broke correctly classified inputs.</summary>
public sealed record PerturbationStats(int Count, double MeanLInf, double MedianLInf, double MeanL2, double MedianL2);

/// <summary>One attack of a worst-case run: how many inputs it broke that the earlier attacks had not.</summary>
public sealed record AttackStage(string Attack, int Attempted, int Broken, double RobustAccuracyAfter, double Seconds, double ImagesPerSecond);

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
    double ImagesPerSecond);

/// <summary>A report plus the examples behind it: the strongest adversarial example per input (the clean image if none).</summary>
public sealed record RobustnessRun(
    RobustnessReport Report,
    float[] Adversarial,
    byte[] Labels,
    int[] CleanPredictions,
    int[] AdversarialPredictions,
    string?[] BrokenBy);

/// <summary>An attack produced an example outside its threat model or outside [0, 1]: a bug, never a result.</summary>
public sealed class AttackInvariantException(string message) : Exception(message);
