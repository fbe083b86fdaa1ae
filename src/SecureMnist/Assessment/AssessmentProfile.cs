namespace SecureMnist.Assessment;

/// <summary>One adversarially trained model of an assessment.</summary>
public sealed record DefenseRecipe(string Defense, int Epochs, double Epsilon, int Steps, double AdversarialWeight, int EpsilonRampEpochs = 0);

/// <summary>
/// How much an assessment does. <see cref="Quick"/> is minutes on two cores (subsets, short schedules);
/// <see cref="Full"/> uses the seeds' settings (60,000 images, eps 0.3, 100 poisoned samples) and the stronger evaluations.
/// </summary>
public sealed record AssessmentProfile(
    string Name,
    int? TrainSubset,
    int Epochs,
    int AttackImages,
    double Epsilon,
    int PgdSteps,
    double PgdStepSize,
    int Restarts,
    IReadOnlyList<string> WorstCaseAttacks,
    IReadOnlyList<double> CurveEpsilons,
    IReadOnlyList<DefenseRecipe> Defenses,
    int PoisonCount,
    int? PoisonTrainSubset,
    int PoisonEpochs,
    bool RunStrip)
{
    public static AssessmentProfile Quick { get; } = new(
        "quick", TrainSubset: 10_000, Epochs: 3, AttackImages: 500, Epsilon: 0.3, PgdSteps: 40, PgdStepSize: 0.01, Restarts: 1,
        WorstCaseAttacks: ["fgsm", "pgd"], CurveEpsilons: [0.1, 0.2, 0.3],
        Defenses: [new DefenseRecipe("pgd", Epochs: 3, Epsilon: 0.3, Steps: 3, AdversarialWeight: 1.0, EpsilonRampEpochs: 1)],
        PoisonCount: 100, PoisonTrainSubset: 10_000, PoisonEpochs: 6, RunStrip: false);

    public static AssessmentProfile Full { get; } = new(
        "full", TrainSubset: null, Epochs: 12, AttackImages: 10_000, Epsilon: 0.3, PgdSteps: 40, PgdStepSize: 0.01, Restarts: 1,
        WorstCaseAttacks: ["fgsm", "pgd", "apgd-ce", "apgd-dlr"], CurveEpsilons: [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4],
        Defenses:
        [
            new DefenseRecipe("fgsm", Epochs: 12, Epsilon: 0.3, Steps: 1, AdversarialWeight: 0.5),
            new DefenseRecipe("pgd", Epochs: 12, Epsilon: 0.3, Steps: 10, AdversarialWeight: 1.0, EpsilonRampEpochs: 2),
        ],
        PoisonCount: 100, PoisonTrainSubset: null, PoisonEpochs: 12, RunStrip: true);

    public static AssessmentProfile Named(string name) => name switch
    {
        "quick" => Quick,
        "full" => Full,
        _ => throw new ArgumentException($"unknown profile '{name}'; use quick or full", nameof(name)),
    };
}
