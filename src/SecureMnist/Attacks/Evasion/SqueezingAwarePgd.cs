using SecureMnist.Defenses;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// Settings of the adaptive attack on feature squeezing: L-inf PGD with <paramref name="Steps"/> steps of eps/10 from a random start, run
/// once for each weight in <paramref name="Weights"/> of the squeezing term.
/// </summary>
public sealed record SqueezingAwareOptions(double Epsilon, int Steps = 100, IReadOnlyList<double>? Weights = null, int Seed = 0)
{
    public IReadOnlyList<double> SqueezeWeights => Weights ?? [0.5, 2, 8];

    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        if (Steps <= 0) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "steps must be at least 1");
        if (SqueezeWeights.Count == 0 || SqueezeWeights.Any(w => !(w >= 0) || double.IsInfinity(w)))
            throw new ArgumentException("the squeezing weights must be finite numbers >= 0, at least one", nameof(Weights));
    }
}

/// <summary>
/// An attacker who knows the feature-squeezing detector, its squeezers and its threshold (He et al. 2017, "Adversarial Example
/// Defenses: Ensembles of Weak Defenses are not Strong"). It ascends a joint loss: the margin of the best wrong class over the true
/// one, minus a weight times the squeezing score the detector thresholds. The bit-depth squeezer rounds, so its gradient is zero
/// almost everywhere; the attack passes the gradient straight through it (BPDA, Athalye et al. 2018). An input's example is the
/// first that is misclassified with a score at or under the threshold, i.e. one the model gets wrong and the detector lets through.
/// </summary>
public sealed class SqueezingAwarePgd : IEvasionAttack
{
    private readonly SqueezingAwareOptions options;
    private readonly FeatureSqueezing detector;

    public SqueezingAwarePgd(SqueezingAwareOptions options, FeatureSqueezing detector)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(detector);
        options.Validate();
        this.options = options;
        this.detector = detector;
    }

    public string Name => $"squeezing-aware-pgd(eps={options.Epsilon},steps={options.Steps},weights={string.Join("/", options.SqueezeWeights)})";
    public PerturbationNorm Norm => PerturbationNorm.LInf;
    public double Epsilon => options.Epsilon;
    public bool Targeted => false;

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        var result = original.clone();
        var evaded = zeros(original.shape[0], dtype: ScalarType.Bool);
        var stepSize = options.Epsilon / 10;
        foreach (var weight in options.SqueezeWeights)
        {
            using var runScope = NewDisposeScope();
            var adversarial = AttackMath.Project(original + (rand(original.shape, generator: generator) * 2 - 1) * options.Epsilon, original, options.Epsilon, PerturbationNorm.LInf);
            for (var step = 0; step < options.Steps; step++)
            {
                using var stepScope = NewDisposeScope();
                var (gradient, wrong, score) = JointGradient(model, adversarial, labels, weight);
                var success = wrong.logical_and(score.le(detector.Threshold)).logical_and(evaded.logical_not());
                result.copy_(where(success.view(-1, 1, 1, 1), adversarial, result));
                evaded.logical_or_(success);
                adversarial.copy_(AttackMath.Project(adversarial + stepSize * gradient.sign(), original, options.Epsilon, PerturbationNorm.LInf));
            }
            using (no_grad())
            {
                var last = model.Logits(adversarial).argmax(1).ne(labels);
                var lastScore = Score(model, adversarial, straightThrough: false);
                var success = last.logical_and(lastScore.le(detector.Threshold)).logical_and(evaded.logical_not());
                result.copy_(where(success.view(-1, 1, 1, 1), adversarial, result));
                evaded.logical_or_(success);
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The gradient of margin - weight · score, and at the current point whether the model errs and the exact score.</summary>
    private (Tensor Gradient, Tensor Wrong, Tensor Score) JointGradient(IClassifier model, Tensor images, Tensor labels, double weight)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var x = images.detach().requires_grad_(true);
        var logits = model.Logits(x);
        var trueLogit = logits.gather(1, labels.view(-1, 1)).squeeze(1);
        var isTrue = arange(logits.shape[1]).unsqueeze(0).eq(labels.view(-1, 1));
        var margin = logits.masked_fill(isTrue, float.NegativeInfinity).amax(1) - trueLogit;
        var score = Score(model, x, straightThrough: true, logits);
        // Once wrong, pushing the margin further only costs squeezing distance: cap it so the score term takes over.
        var objective = margin.clamp_max(2.0) - weight * score;
        var gradient = autograd.grad([objective.sum()], [x])[0];
        return (gradient.detach().MoveToOuterDisposeScope(), margin.detach().gt(0).MoveToOuterDisposeScope(), score.detach().MoveToOuterDisposeScope());
    }

    /// <summary>The detector's score: the larger L1 distance between the softmax on the input and on each squeezed copy.</summary>
    private Tensor Score(IClassifier model, Tensor images, bool straightThrough, Tensor? logits = null)
    {
        using var scope = NewDisposeScope();
        var squeezing = detector.Options;
        var depth = FeatureSqueezing.ReduceBitDepth(images, squeezing.BitDepth);
        // BPDA: the rounded value forward, the identity's gradient backward.
        if (straightThrough) depth = images + (depth - images).detach();
        var median = FeatureSqueezing.MedianFilter(images, squeezing.MedianWindow);
        var plain = nn.functional.softmax(logits ?? model.Logits(images), 1);
        var squeezedDepth = nn.functional.softmax(model.Logits(depth), 1);
        var squeezedMedian = nn.functional.softmax(model.Logits(median), 1);
        return FeatureSqueezing.Score(plain, squeezedDepth, squeezedMedian).MoveToOuterDisposeScope();
    }
}
