using SecureMnist.Modeling;

namespace SecureMnist.Training;

/// <summary>Everything that decides what a training run computes. Recorded in run records and packages.</summary>
public sealed record TrainingOptions
{
    public static readonly string[] Optimizers = ["adam", "adamw", "sgd", "adadelta"];
    public static readonly string[] Schedules = ["constant", "cosine", "step", "onecycle"];

    public string Architecture { get; init; } = Architectures.Default;
    public int Epochs { get; init; } = 12;
    public int BatchSize { get; init; } = 128;
    public double LearningRate { get; init; } = 1e-3;
    public string Optimizer { get; init; } = "adam";
    public string Schedule { get; init; } = "cosine";
    /// <summary>Multiplier per epoch for the "step" schedule.</summary>
    public double StepGamma { get; init; } = 0.7;
    public double WeightDecay { get; init; }
    public int Seed { get; init; } = 1;
    /// <summary>Training images used (the first N of the shuffled set); null means all.</summary>
    public int? TrainSubset { get; init; }
    /// <summary>Images held out of training for validation (0: none; the test set is then reported each epoch).</summary>
    public int ValidationSize { get; init; }

    public void Validate()
    {
        _ = Architectures.Descriptions.ContainsKey(Architecture)
            ? 0 : throw new ArgumentException($"unknown architecture '{Architecture}'; known: {string.Join(", ", Architectures.Names)}");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Epochs);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Epochs, 1000);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(BatchSize, 8192);
        if (!(LearningRate > 0 && LearningRate <= 10)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be in (0, 10]");
        if (!Optimizers.Contains(Optimizer)) throw new ArgumentException($"unknown optimizer '{Optimizer}'; known: {string.Join(", ", Optimizers)}");
        if (!Schedules.Contains(Schedule)) throw new ArgumentException($"unknown schedule '{Schedule}'; known: {string.Join(", ", Schedules)}");
        if (!(StepGamma > 0 && StepGamma <= 1)) throw new ArgumentOutOfRangeException(nameof(StepGamma), StepGamma, "step gamma must be in (0, 1]");
        if (!(WeightDecay >= 0 && WeightDecay < 1)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "weight decay must be in [0, 1)");
        if (TrainSubset is { } subset) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(subset, nameof(TrainSubset));
        ArgumentOutOfRangeException.ThrowIfNegative(ValidationSize);
    }
}
