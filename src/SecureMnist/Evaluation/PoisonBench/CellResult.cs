namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>
/// One detector on one cell. Recall and precision are null where undefined (nothing poisoned, nothing flagged). The clean-target rate is
/// the share of the target class's clean training images flagged (for a clean control: of the class the grid targets, see
/// <see cref="FlaggedPerClass"/>). With a score, <see cref="Auroc"/> separates poison from the clean members of the target class and
/// <see cref="RocTruePositiveRates"/> holds the TPR at each of <see cref="CellResult.RocFalsePositiveRates"/>.
/// </summary>
public sealed record DetectorOutcome(
    string Method, int Flagged, int Poisoned, int TruePositives, double? Recall, double? Precision,
    int CleanInTarget, int CleanFlaggedInTarget, double CleanFlaggedTargetRate, int CleanFlaggedOverall,
    IReadOnlyList<int> FlaggedPerClass, double? Auroc = null, IReadOnlyList<double>? RocTruePositiveRates = null);

/// <summary>STRIP on one cell's backdoored model, with one blend: calibrated at the grid's FPR on clean images, TPR on triggered ones.</summary>
public sealed record StripOutcome(string Blend, double Threshold, int CleanImages, int CleanFlagged, double FalsePositiveRate,
    int TriggeredImages, int TriggeredFlagged, double TruePositiveRate);

/// <summary>
/// The default detector's flagged samples removed and the model retrained with the same recipe. When nothing was flagged the training set
/// is unchanged and, training being seeded, so is the model: it is not retrained (<see cref="Retrained"/> false).
/// </summary>
public sealed record SanitizeOutcome(string Method, int Removed, int PoisonRemoved, bool Retrained, double CleanAccuracy, double? AttackSuccessRate);

/// <summary>What one grid cell measured. <see cref="AttackSuccessRate"/> is null for attacks without a trigger and for the clean control.</summary>
public sealed record CellResult(
    GridCell Cell,
    string Fingerprint,
    int TrainImages,
    IReadOnlyList<int> ClassSizes,
    int PoisonCount,
    int CoverCount,
    double CleanAccuracy,
    double? AttackSuccessRate,
    int? TriggeredImages,
    IReadOnlyList<DetectorOutcome> Detectors,
    IReadOnlyList<StripOutcome> Strip,
    SanitizeOutcome? Sanitized,
    double Seconds,
    string RunBy)
{
    /// <summary>The false-positive rates every detector ROC is sampled at (so ROCs of many cells average point by point).</summary>
    public static IReadOnlyList<double> RocFalsePositiveRates { get; } = [0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1];
}
