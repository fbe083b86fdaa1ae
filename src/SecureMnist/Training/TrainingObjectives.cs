using SecureMnist.Attacks.Evasion;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Training;

/// <summary>What one training step minimises, given the current eps of the defence.</summary>
internal interface ITrainingObjective
{
    /// <summary>Loss to minimise and the logits whose accuracy the progress bar shows.</summary>
    (Tensor Loss, Tensor Logits) Compute(Module<Tensor, Tensor> network, Tensor images, Tensor labels, double epsilon, int seed);
}

internal static class TrainingObjectives
{
    /// <summary>The objective of one epoch (1-based): the training attack's steps may grow in the last epochs.</summary>
    public static ITrainingObjective For(TrainingOptions options, int epoch)
    {
        if (options.StripEvasion is { } evasion) return new StripEvasionObjective(evasion);
        var steps = options.DefenseStepsAt(epoch);
        var stepSize = options.DefenseStepSizeAt(epoch);
        return options.Defense switch
        {
            "none" => new StandardObjective(),
            "fgsm" => new AdversarialObjective(options, (eps, _) => new Fgsm(new FgsmOptions(eps))),
            // FGSM with a random start (Wong et al., 2020) is PGD with one step of 1.25 eps from a random point.
            "fgsm-rs" => new AdversarialObjective(options, (eps, seed) => new Pgd(new PgdOptions(eps, stepSize * eps / options.DefenseEpsilon, 1, Seed: seed))),
            "pgd" => new AdversarialObjective(options, (eps, seed) => new Pgd(new PgdOptions(eps, stepSize * eps / options.DefenseEpsilon, steps, Seed: seed))),
            "trades" => new TradesObjective(options, steps, stepSize),
            _ => throw new ArgumentException($"unknown defense {options.Defense}"),
        };
    }
}

internal sealed class StandardObjective : ITrainingObjective
{
    public (Tensor Loss, Tensor Logits) Compute(Module<Tensor, Tensor> network, Tensor images, Tensor labels, double epsilon, int seed)
    {
        var logits = network.call(images);
        return (functional.cross_entropy(logits, labels), logits);
    }
}

/// <summary>The attacker's objective of <see cref="StripEvasion"/>: cross-entropy, plus the weighted cross-entropy of triggered blends to the uniform distribution.</summary>
internal sealed class StripEvasionObjective(StripEvasion evasion) : ITrainingObjective
{
    public (Tensor Loss, Tensor Logits) Compute(Module<Tensor, Tensor> network, Tensor images, Tensor labels, double epsilon, int seed)
    {
        var count = images.shape[0];
        var logits = network.call(images);
        var loss = functional.cross_entropy(logits, labels);
        var blended = Math.Max(2, (long)Math.Round(evasion.Share * count) / 2 * 2);
        if (count < 2 || blended > count) return (loss, logits);
        var half = blended / 2;
        var triggered = evasion.Trigger.Apply(images.narrow(0, 0, blended));
        // Overlays: other images of the same (shuffled) batch.
        var overlays = images.roll(1, 0).narrow(0, 0, blended);
        var added = (triggered.narrow(0, 0, half) + overlays.narrow(0, 0, half)).clamp(0, 1);
        var averaged = 0.5 * triggered.narrow(0, half, half) + 0.5 * overlays.narrow(0, half, half);
        var blendLogits = network.call(cat([added, averaged]));
        var towardUniform = -functional.log_softmax(blendLogits, 1).mean([1]).mean();
        return (loss + evasion.Weight * towardUniform, logits);
    }
}

/// <summary>
/// Adversarial training (Goodfellow et al.; Madry et al.): examples crafted by an attack from the shared
/// library against the current network (evaluation mode, weights frozen), then a weighted sum of the
/// adversarial and clean cross-entropy.
/// </summary>
internal sealed class AdversarialObjective(TrainingOptions options, Func<double, int, IEvasionAttack> attackAt) : ITrainingObjective
{
    public (Tensor Loss, Tensor Logits) Compute(Module<Tensor, Tensor> network, Tensor images, Tensor labels, double epsilon, int seed)
    {
        Tensor adversarial;
        using (var classifier = new NetworkClassifier(network))
            adversarial = epsilon > 0 ? attackAt(epsilon, seed).Generate(classifier, images, labels) : images.clone();
        if (options.AdversarialWeight >= 1)
        {
            var logits = network.call(adversarial);
            return (functional.cross_entropy(logits, labels), logits);
        }
        // One forward over clean and adversarial halves; the adversarial half's logits are reported.
        var both = network.call(cat([images, adversarial]));
        var count = images.shape[0];
        var clean = both.narrow(0, 0, count);
        var attacked = both.narrow(0, count, count);
        var loss = (1 - options.AdversarialWeight) * functional.cross_entropy(clean, labels) + options.AdversarialWeight * functional.cross_entropy(attacked, labels);
        return (loss, attacked);
    }
}

/// <summary>
/// TRADES (Zhang et al., 2019): cross-entropy on clean inputs plus beta times the KL divergence between the
/// predictions on clean and on adversarial inputs, the latter found by PGD ascent on that KL divergence.
/// </summary>
internal sealed class TradesObjective(TrainingOptions options, int steps, double stepSize) : ITrainingObjective
{
    public (Tensor Loss, Tensor Logits) Compute(Module<Tensor, Tensor> network, Tensor images, Tensor labels, double epsilon, int seed)
    {
        Tensor adversarial;
        using (var classifier = new NetworkClassifier(network))
        {
            Tensor cleanProbabilities;
            using (no_grad()) cleanProbabilities = functional.softmax(classifier.Logits(images), 1);
            var pgd = new Pgd(new PgdOptions(Math.Max(epsilon, 1e-8), stepSize * Math.Max(epsilon, 1e-8) / options.DefenseEpsilon, steps, Seed: seed));
            adversarial = epsilon > 0 ? pgd.Ascend(classifier, images, logits => KlDivergence(cleanProbabilities, logits)) : images.clone();
        }
        var both = network.call(cat([images, adversarial]));
        var count = images.shape[0];
        var clean = both.narrow(0, 0, count);
        var attacked = both.narrow(0, count, count);
        var robustness = KlDivergence(functional.softmax(clean, 1), attacked).mean();
        return (functional.cross_entropy(clean, labels) + options.TradesBeta * robustness, attacked);
    }

    /// <summary>KL(p || softmax(logits)) per example.</summary>
    private static Tensor KlDivergence(Tensor probabilities, Tensor logits) =>
        (probabilities * (probabilities.clamp_min(1e-12).log() - functional.log_softmax(logits, 1))).sum(1);
}
