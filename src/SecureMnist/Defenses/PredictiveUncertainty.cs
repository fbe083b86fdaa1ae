using SecureMnist.Attacks.Evasion;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

/// <summary>Per-input uncertainty scores from several predictive distributions of the same inputs (higher: less sure).</summary>
/// <param name="MaxSoftmax">One minus the largest mean probability: today's abstain score.</param>
/// <param name="Entropy">Entropy of the mean distribution (nats): total predictive uncertainty.</param>
/// <param name="MutualInformation">Entropy of the mean minus the mean entropy: the members' disagreement, the epistemic part
/// (Gal and Ghahramani 2016; Lakshminarayanan et al. 2017). Zero for a single member.</param>
public sealed record UncertaintyScores(double[] MaxSoftmax, double[] Entropy, double[] MutualInformation);

/// <summary>
/// Uncertainty for abstaining, from a deep ensemble (independently trained, each verified) or from MC dropout (one network sampled
/// with dropout on). Both give a set of distributions per input; the scores are computed the same way from either.
/// </summary>
public static class PredictiveUncertainty
{
    /// <summary>The scores from member distributions, each [N, classes] of probabilities.</summary>
    public static UncertaintyScores Of(IReadOnlyList<Tensor> memberProbabilities)
    {
        ArgumentNullException.ThrowIfNull(memberProbabilities);
        if (memberProbabilities.Count == 0) throw new ArgumentException("uncertainty needs at least one predictive distribution");
        using var scope = NewDisposeScope();
        var stacked = stack(memberProbabilities.Select(p => p.to(ScalarType.Float64)).ToArray()); // [M, N, C]
        var mean = stacked.mean([0]);
        static Tensor Entropy(Tensor p) => -(p * p.clamp_min(1e-12).log()).sum(-1);
        var total = Entropy(mean);
        var expected = Entropy(stacked).mean([0]);
        static double[] Values(Tensor t) => t.contiguous().data<double>().ToArray();
        return new UncertaintyScores(Values(1 - mean.max(1).values), Values(total), Values((total - expected).clamp_min(0)));
    }

    /// <summary>One distribution per member of an ensemble (each network in evaluation mode).</summary>
    public static IReadOnlyList<Tensor> Ensemble(IReadOnlyList<Module<Tensor, Tensor>> members, Tensor images)
    {
        ArgumentNullException.ThrowIfNull(members);
        return members.Select(member =>
        {
            using var classifier = new NetworkClassifier(member);
            using var _ = no_grad();
            return functional.softmax(classifier.Logits(images), 1).detach();
        }).ToList();
    }

    /// <summary><paramref name="samples"/> distributions from one network with its dropout layers on (MC dropout), seeded.</summary>
    public static IReadOnlyList<Tensor> McDropout(Module<Tensor, Tensor> network, Tensor images, int samples, long seed)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, 2);
        var wasTraining = network.training;
        manual_seed(seed);
        network.train();
        try
        {
            using var _ = no_grad();
            return Enumerable.Range(0, samples).Select(_ => functional.softmax(network.call(images), 1).detach()).ToList();
        }
        finally
        {
            network.train(wasTraining);
        }
    }
}
