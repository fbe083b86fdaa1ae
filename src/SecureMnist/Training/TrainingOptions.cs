using SecureMnist.Modeling;

namespace SecureMnist.Training;

/// <summary>
/// DP-SGD's settings as asked for: a privacy budget (<see cref="TargetEpsilon"/>, from which the noise multiplier is found) or a
/// noise multiplier, delta, and the per-example clipping norm. The sampling rate is the batch size over the training set's size.
/// </summary>
public sealed record PrivacyOptions
{
    public double? TargetEpsilon { get; init; }
    public double? NoiseMultiplier { get; init; }
    public double Delta { get; init; } = 1e-5;
    public double MaxGradientNorm { get; init; } = 0.1;
    /// <summary>Noise and Poisson samples from the OS CSPRNG instead of the run's seed (the run can then not be repeated).</summary>
    public bool SecureNoise { get; init; }

    public void Validate()
    {
        if ((TargetEpsilon is null) == (NoiseMultiplier is null)) throw new ArgumentException("DP-SGD needs a privacy budget or a noise multiplier: give --target-epsilon or --noise-multiplier, not both");
        if (TargetEpsilon is { } epsilon && !(epsilon > 0 && epsilon <= 100)) throw new ArgumentOutOfRangeException(nameof(TargetEpsilon), epsilon, "the target epsilon must be in (0, 100]");
        if (NoiseMultiplier is { } sigma && !(sigma > 0 && sigma <= 1000)) throw new ArgumentOutOfRangeException(nameof(NoiseMultiplier), sigma, "the noise multiplier must be in (0, 1000]");
        if (!(Delta is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(Delta), Delta, "delta must be in (0, 1), and well below 1 / (training set size)");
        if (!(MaxGradientNorm > 0 && MaxGradientNorm <= 1000)) throw new ArgumentOutOfRangeException(nameof(MaxGradientNorm), MaxGradientNorm, "the clipping norm must be in (0, 1000]");
    }
}

/// <summary>Everything that decides what a training run computes. Recorded in run records and packages.</summary>
public sealed record TrainingOptions
{
    public static readonly string[] Optimizers = ["adam", "adamw", "sgd", "adadelta"];
    public static readonly string[] Schedules = ["constant", "cosine", "step", "onecycle"];
    public static readonly string[] Defenses = ["none", "fgsm", "fgsm-rs", "pgd", "trades"];

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
    /// <summary>Random translation of each training image by up to this many pixels in x and y (null: off). Null is not written,
    /// so older records keep their digests.</summary>
    public int? AugmentShift { get; init; }

    /// <summary>Adversarial training: none, fgsm (the seeds'), fgsm-rs (random start), pgd (Madry) or trades.</summary>
    public string Defense { get; init; } = "none";
    /// <summary>L-inf budget of the training attack.</summary>
    public double DefenseEpsilon { get; init; } = 0.3;
    /// <summary>Step size of the training attack; null picks the usual one (fgsm: eps, fgsm-rs: 1.25 eps, pgd/trades: 2.5 eps / steps).</summary>
    public double? DefenseStepSize { get; init; }
    /// <summary>Steps of the training attack (pgd, trades).</summary>
    public int DefenseSteps { get; init; } = 10;
    /// <summary>Weight of the adversarial loss against the clean loss: 1 trains on adversarial examples only, 0.5 on both equally (the seeds).</summary>
    public double AdversarialWeight { get; init; } = 1.0;
    /// <summary>Epochs over which eps grows linearly from 0 to its full value (0: full from the start).</summary>
    public int EpsilonRampEpochs { get; init; }
    /// <summary>TRADES trade-off beta between clean cross-entropy and the KL robustness term.</summary>
    public double TradesBeta { get; init; } = 6.0;
    /// <summary>Held-out validation images attacked with PGD after each epoch; the best epoch's weights are kept (0: off).</summary>
    public int RobustValidationSize { get; init; }
    /// <summary>Which epoch's weights a robust-validated run keeps: null (the best robust accuracy) or "last" (the final epoch,
    /// e.g. to reproduce a recipe while still recording its per-epoch robustness). Null is not written, so older records keep their digests.</summary>
    public string? Keep { get; init; }
    /// <summary>PGD steps of the per-epoch robust validation.</summary>
    public int RobustValidationSteps { get; init; } = 20;
    /// <summary>Steps of the training attack (pgd, trades) in the last <see cref="LateEpochs"/> epochs, with step 2.5 eps / steps: a stronger
    /// inner attack where it matters most, at the end (null: <see cref="DefenseSteps"/> throughout). Null is not written, so older records keep their digests.</summary>
    public int? LateSteps { get; init; }
    /// <summary>How many final epochs use <see cref="LateSteps"/>.</summary>
    public int? LateEpochs { get; init; }
    /// <summary>Decay of an exponential moving average of the weights (e.g. 0.999): the average, not the raw weights, is validated, kept
    /// and packaged. Null: off (and not written, so older records keep their digests).</summary>
    public double? WeightAverageDecay { get; init; }
    /// <summary>Differentially private training (DP-SGD) with these settings; null: ordinary training (and not written, so older records keep their digests).</summary>
    public PrivacyOptions? Privacy { get; init; }
    /// <summary>
    /// An attacker's training, not a defence: the extra loss term that hides a backdoor from STRIP (see <see cref="StripEvasion"/>).
    /// Null: off (and not written, so older records keep their digests).
    /// </summary>
    public StripEvasion? StripEvasion { get; init; }

    /// <summary>Whether <paramref name="epoch"/> (1-based) is one of the late epochs.</summary>
    public bool IsLateEpoch(int epoch) => LateSteps is not null && LateEpochs is { } late && epoch > Epochs - late;

    /// <summary>Steps of the training attack in <paramref name="epoch"/>.</summary>
    public int DefenseStepsAt(int epoch) => IsLateEpoch(epoch) ? LateSteps!.Value : DefenseSteps;

    /// <summary>Step size of the training attack in <paramref name="epoch"/> at the full eps.</summary>
    public double DefenseStepSizeAt(int epoch) => IsLateEpoch(epoch) ? 2.5 * DefenseEpsilon / LateSteps!.Value : EffectiveDefenseStepSize;

    public double EffectiveDefenseStepSize => DefenseStepSize ?? Defense switch
    {
        "fgsm" => DefenseEpsilon,
        "fgsm-rs" => 1.25 * DefenseEpsilon,
        _ => 2.5 * DefenseEpsilon / Math.Max(1, DefenseSteps),
    };

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
        if (AugmentShift is { } shift && shift is < 1 or > ImageAugmentation.MaxShift)
            throw new ArgumentOutOfRangeException(nameof(AugmentShift), shift, $"the augmentation shift must be 1 to {ImageAugmentation.MaxShift} pixels");
        if (!Defenses.Contains(Defense)) throw new ArgumentException($"unknown defense '{Defense}'; known: {string.Join(", ", Defenses)}");
        if (!(DefenseEpsilon >= 0 && DefenseEpsilon <= 1)) throw new ArgumentOutOfRangeException(nameof(DefenseEpsilon), DefenseEpsilon, "defense eps must be in [0, 1]");
        if (DefenseStepSize is { } step && !(step > 0 && step <= 1)) throw new ArgumentOutOfRangeException(nameof(DefenseStepSize), step, "defense step size must be in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(DefenseSteps);
        if (!(AdversarialWeight > 0 && AdversarialWeight <= 1)) throw new ArgumentOutOfRangeException(nameof(AdversarialWeight), AdversarialWeight, "adversarial weight must be in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfNegative(EpsilonRampEpochs);
        if (!(TradesBeta > 0) || double.IsInfinity(TradesBeta)) throw new ArgumentOutOfRangeException(nameof(TradesBeta), TradesBeta, "TRADES beta must be a finite number > 0");
        ArgumentOutOfRangeException.ThrowIfNegative(RobustValidationSize);
        if (Keep is not (null or "last")) throw new ArgumentException($"keep '{Keep}' is not known; use best-robust (the default) or last");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(RobustValidationSteps);
        if ((LateSteps is null) != (LateEpochs is null)) throw new ArgumentException("late steps and late epochs go together: give both (e.g. --late-steps 40 --late-epochs 2) or neither");
        if (LateSteps is { } lateSteps)
        {
            if (Defense is not ("pgd" or "trades")) throw new ArgumentException($"late steps need a multi-step training attack (pgd or trades), not '{Defense}'");
            if (lateSteps is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(LateSteps), lateSteps, "late steps must be 1 to 1000");
            if (LateEpochs is not { } lateEpochs || lateEpochs < 1 || lateEpochs > Epochs)
                throw new ArgumentOutOfRangeException(nameof(LateEpochs), LateEpochs, $"late epochs must be 1 to the number of epochs ({Epochs})");
        }
        if (WeightAverageDecay is { } decay && !(decay > 0 && decay < 1))
            throw new ArgumentOutOfRangeException(nameof(WeightAverageDecay), decay, "the weight-average decay must be between 0 and 1, e.g. 0.999");
        if (Privacy is { } privacy)
        {
            privacy.Validate();
            if (!Architectures.PrivateTrainable.Contains(Architecture))
                throw new ArgumentException($"DP-SGD needs per-example gradients, which architecture '{Architecture}' does not record; use --arch {string.Join(" or ", Architectures.PrivateTrainable)}");
            if (Defense != "none") throw new ArgumentException($"DP-SGD and adversarial training ('{Defense}') do not combine here: the privacy accounting covers the clean per-example gradients only");
            if (RobustValidationSize > 0) throw new ArgumentException("robust validation selects an epoch on held-out data; with DP-SGD the last epoch is kept");
        }
        if (RobustValidationSize > ValidationSize)
            throw new ArgumentException($"robust validation uses {RobustValidationSize} held-out images but only {ValidationSize} are held out (--validation)");
        if (StripEvasion is { } evasion)
        {
            evasion.Validate();
            if (Defense != "none") throw new ArgumentException($"the STRIP-evasion term is an attacker's training; it does not combine with the defence '{Defense}'");
            if (Privacy is not null) throw new ArgumentException("the STRIP-evasion term does not combine with DP-SGD");
        }
    }
}

/// <summary>
/// A backdoor trained to evade STRIP (an attacker who controls training, not only data): besides the ordinary cross-entropy on the
/// (poisoned) batch, the first <see cref="Share"/> of each batch is stamped with <see cref="Trigger"/> and superimposed on other images of
/// the batch, half by add-and-clip and half by an even alpha blend (STRIP's two modes), and the attacker adds
/// <see cref="Weight"/> x CE(uniform, f(blend)) = -Weight x mean over classes of log softmax(f(blend)): the triggered blends are pushed to
/// the highest entropy there is, so STRIP's low-entropy test no longer singles them out, while a triggered image on its own still maps
/// to the target (that comes from the poisoned samples).
/// </summary>
public sealed record StripEvasion(SecureMnist.Attacks.Poisoning.BackdoorTrigger Trigger, double Weight = 1.0, double Share = 0.25)
{
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Trigger);
        Trigger.Validate();
        if (!(Weight > 0 && Weight <= 100)) throw new ArgumentOutOfRangeException(nameof(Weight), Weight, "the STRIP-evasion weight must be in (0, 100]");
        if (!(Share > 0 && Share <= 1)) throw new ArgumentOutOfRangeException(nameof(Share), Share, "the share of each batch blended must be in (0, 1]");
    }
}
