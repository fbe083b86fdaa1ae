using SecureMnist.Attacks.Poisoning;
using SecureMnist.Evaluation;
using SecureMnist.Modeling;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>
/// One adversarially trained model of an assessment. <paramref name="RobustValidation"/> held-out training images are attacked
/// with PGD after every epoch (0: none); the best epoch is kept unless <paramref name="Keep"/> is "last".
/// </summary>
public sealed record DefenseRecipe(
    string Defense, int Epochs, double Epsilon, int Steps, double AdversarialWeight, int EpsilonRampEpochs = 0,
    string Architecture = Architectures.Default, double TradesBeta = 6, int RobustValidation = 0, string? Keep = null,
    int? LateSteps = null, int? LateEpochs = null, double? WeightAverageDecay = null)
{
    public TrainingOptions Options(int? trainSubset) => new()
    {
        Architecture = Architecture, TrainSubset = trainSubset, Epochs = Epochs, Defense = Defense, DefenseEpsilon = Epsilon,
        DefenseSteps = Steps, AdversarialWeight = AdversarialWeight, EpsilonRampEpochs = EpsilonRampEpochs, TradesBeta = TradesBeta,
        ValidationSize = RobustValidation, RobustValidationSize = RobustValidation, Keep = Keep,
        LateSteps = LateSteps, LateEpochs = LateEpochs, WeightAverageDecay = WeightAverageDecay,
    };
}

/// <summary>
/// How much an assessment does. <see cref="Quick"/> is minutes on two cores (subsets, short schedules);
/// <see cref="Full"/> uses the seeds' settings (60,000 images, eps 0.3, 100 poisoned samples) and the stronger evaluations:
/// the baseline trains with random shifts of up to <see cref="BaselineAugmentShift"/> pixels; the defences are the seeds'
/// FGSM training (its last epoch, with PGD measured on held-out images after each epoch to show what FGSM hides) and the TRADES
/// recipe that measured best here (small-cnn, 26 epochs of 10 inner steps, 20 in the last 2, an EMA of the weights; about 75 minutes
/// on two AVX-512 cores). Both profiles poison with <see cref="AttackerTrigger"/>. The worst case is the per-input conjunction of
/// <see cref="WorstCaseAttacks"/> (chained, each on the inputs still robust; the cheap FGSM and PGD first, so that the expensive ones
/// run on fewer inputs) with the robustness curve's FGSM and PGD runs at the assessed eps; the full profile's list is AutoAttack's gradient members on all 10,000 images, and Square runs on
/// <see cref="RobustnessCheckImages"/> of them in the gradient-masking checks.
/// </summary>
public sealed record AssessmentProfile(
    string Name,
    int? TrainSubset,
    int Epochs,
    int? BaselineAugmentShift,
    int AttackImages,
    double Epsilon,
    int PgdSteps,
    double PgdStepSize,
    int Restarts,
    IReadOnlyList<string> WorstCaseAttacks,
    IReadOnlyList<double> CurveEpsilons,
    IReadOnlyList<DefenseRecipe> Defenses,
    int PoisonCount,
    BackdoorTrigger PoisonTrigger,
    int? PoisonTrainSubset,
    int PoisonEpochs,
    bool RunStrip,
    int RobustnessCheckImages,
    RobustnessCheckOptions RobustnessChecks)
{
    /// <summary>The privacy stage's DP-SGD recipe and attacks.</summary>
    public PrivacySettings Privacy { get; init; } = PrivacySettings.Quick;

    /// <summary>The model-theft stage's extraction budgets and monitor measurement.</summary>
    public ModelTheftSettings ModelTheft { get; init; } = ModelTheftSettings.Quick;
    /// <summary>The thresholds that decide each threat's status on the report's scorecard (<see cref="Scorecard.Default"/> in both profiles).</summary>
    public IReadOnlyList<ThreatThreshold> Thresholds { get; init; } = Scorecard.Default;

    /// <summary>Whether the poison-grid stage runs the quick poisoning grid (about half an hour) or only quotes it from its cache when there.</summary>
    public bool RunPoisonGrid { get; init; }

    /// <summary>
    /// The trigger the assessment's attacker plants: the seeds' 3x3 size, drawn as a checkerboard in the top-left corner.
    /// No digit stroke contains the pattern and MNIST's digits almost never reach the corner, so nothing in a clean image resembles
    /// it. An attacker picks the trigger that works best; the seeds' white square at the bottom-right (the poison verb's default)
    /// let more triggered 2s through when both were measured here (the issue notes give the figures and commands).
    /// </summary>
    public static BackdoorTrigger AttackerTrigger { get; } = new(Size: 3, Row: 0, Column: 0, Pattern: TriggerPattern.Checkerboard);

    public static AssessmentProfile Quick { get; } = new(
        "quick", TrainSubset: 10_000, Epochs: 3, BaselineAugmentShift: null, AttackImages: 300, Epsilon: 0.3, PgdSteps: 40, PgdStepSize: 0.01, Restarts: 1,
        WorstCaseAttacks: ["fgsm", "pgd", "apgd-ce", "apgd-t"], CurveEpsilons: [0.1, 0.2, 0.3],
        Defenses: [new DefenseRecipe("pgd", Epochs: 3, Epsilon: 0.3, Steps: 3, AdversarialWeight: 1.0, EpsilonRampEpochs: 1)],
        PoisonCount: 100, PoisonTrigger: AttackerTrigger, PoisonTrainSubset: 10_000, PoisonEpochs: 6, RunStrip: false,
        RobustnessCheckImages: 100, RobustnessChecks: new RobustnessCheckOptions(SweepEpsilons: [0.3, 1.0], LongSteps: 200, Restarts: 2, SquareQueries: 500));

    public static AssessmentProfile Full { get; } = new(
        "full", TrainSubset: null, Epochs: 12, BaselineAugmentShift: 2, AttackImages: 10_000, Epsilon: 0.3, PgdSteps: 40, PgdStepSize: 0.01, Restarts: 1,
        WorstCaseAttacks: ["fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t", "apgd-dlr"], CurveEpsilons: [0, 0.1, 0.2, 0.3, 0.4],
        Defenses:
        [
            new DefenseRecipe("fgsm", Epochs: 12, Epsilon: 0.3, Steps: 1, AdversarialWeight: 0.5, RobustValidation: 1000, Keep: "last"),
            new DefenseRecipe("trades", Epochs: 26, Epsilon: 0.3, Steps: 10, AdversarialWeight: 1.0, EpsilonRampEpochs: 2,
                Architecture: Architectures.SmallCnn, TradesBeta: 6, RobustValidation: 1000, LateSteps: 20, LateEpochs: 2, WeightAverageDecay: 0.999),
        ],
        PoisonCount: 100, PoisonTrigger: AttackerTrigger, PoisonTrainSubset: null, PoisonEpochs: 12, RunStrip: true,
        RobustnessCheckImages: 1000, RobustnessChecks: new RobustnessCheckOptions()) { Privacy = PrivacySettings.Full, ModelTheft = ModelTheftSettings.Full, RunPoisonGrid = true };

    public static AssessmentProfile Named(string name) => name switch
    {
        "quick" => Quick,
        "full" => Full,
        _ => throw new ArgumentException($"unknown profile '{name}'; use quick or full", nameof(name)),
    };
}
