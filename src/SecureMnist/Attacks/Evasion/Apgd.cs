using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>The loss APGD ascends: cross-entropy, or the scale-invariant difference of logits ratio.</summary>
public enum ApgdLoss
{
    CrossEntropy,
    Dlr,
}

/// <summary>Settings of Auto-PGD (Croce &amp; Hein, 2020), L-infinity.</summary>
public sealed record ApgdOptions(double Epsilon, int Steps = 100, int Restarts = 1, ApgdLoss Loss = ApgdLoss.CrossEntropy, double Rho = 0.75, int Seed = 0)
{
    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Steps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Restarts);
        if (!(Rho > 0 && Rho <= 1)) throw new ArgumentOutOfRangeException(nameof(Rho), Rho, "rho must be in (0, 1]");
    }
}

/// <summary>
/// Auto-PGD, the core of AutoAttack: PGD with momentum whose step size starts at 2·eps and halves at
/// checkpoints when the loss stops improving, restarting from the best point. It needs no step-size
/// tuning, which is why it is chosen here: a hand-tuned PGD can look strong against one model and weak
/// against the next, and gradient masking from defences (e.g. FGSM training) is exposed more reliably.
/// The DLR loss is invariant to logit scaling, so it also defeats models that saturate cross-entropy.
/// </summary>
public sealed class Apgd : IEvasionAttack
{
    private readonly ApgdOptions options;

    public Apgd(ApgdOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"apgd-{(options.Loss == ApgdLoss.CrossEntropy ? "ce" : "dlr")}(eps={options.Epsilon},steps={options.Steps},restarts={options.Restarts})";
    public PerturbationNorm Norm => PerturbationNorm.LInf;
    public double Epsilon => options.Epsilon;
    public bool Targeted => false;

    /// <summary>
    /// Iterations at which the step size may halve: p0 = 0, p1 = 0.22, p(j+1) = p(j) + max(p(j) - p(j-1) - 0.03, 0.06),
    /// in the integer form of the reference implementation (first interval 22% of the steps, each next one
    /// 3% shorter, never below 6%).
    /// </summary>
    internal static IReadOnlyList<int> Checkpoints(int steps)
    {
        var result = new List<int>();
        var interval = Math.Max((int)(0.22 * steps), 1);
        var decrease = Math.Max((int)(0.03 * steps), 1);
        var minimum = Math.Max((int)(0.06 * steps), 1);
        for (var position = interval; position <= steps; position += interval)
        {
            result.Add(position);
            interval = Math.Max(interval - decrease, minimum);
        }
        return result;
    }

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        Tensor? result = null, resultBroken = null;
        for (var restart = 0; restart < options.Restarts; restart++)
        {
            var (adversarial, broken) = Attack(model, original, labels, generator);
            if (result is null)
            {
                (result, resultBroken) = (adversarial, broken);
                continue;
            }
            var take = broken.logical_and(resultBroken!.logical_not());
            result = where(take.view(-1, 1, 1, 1), adversarial, result);
            resultBroken = resultBroken!.logical_or(broken);
        }
        return result!.detach().MoveToOuterDisposeScope();
    }

    private (Tensor Adversarial, Tensor Broken) Attack(IClassifier model, Tensor original, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var eps = options.Epsilon;
        var count = original.shape[0];
        var checkpoints = new HashSet<int>(Checkpoints(options.Steps));
        Tensor Project(Tensor x) => AttackMath.Project(x, original, eps, PerturbationNorm.LInf);

        var adversarial = Project(original + (rand(original.shape, generator: generator) * 2 - 1) * eps);
        var (logits, loss, gradient) = LossAndGradient(model, adversarial, labels);
        var broken = logits.argmax(1).ne(labels);
        var bestAdversarial = adversarial.clone();
        var best = adversarial.clone();
        var bestGradient = gradient.clone();
        var bestLoss = loss.clone();
        var lastLoss = loss.clone();
        var bestLossAtCheck = bestLoss.clone();
        var stepSize = full(count, 1, 1, 1, 2 * eps);
        var previous = adversarial.clone();
        var increases = zeros(count);
        var reducedAtCheck = zeros(count, dtype: ScalarType.Bool);

        // State lives in the tensors above and is updated in place; each step's temporaries die with its scope.
        for (var step = 0; step < options.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var momentum = step == 0 ? 1.0 : 0.75;
            var z = Project(adversarial + stepSize * gradient.sign());
            var next = Project(adversarial + momentum * (z - adversarial) + (1 - momentum) * (adversarial - previous));
            previous.copy_(adversarial);
            adversarial.copy_(next);
            var (stepLogits, stepLoss, stepGradient) = LossAndGradient(model, adversarial, labels);
            gradient.copy_(stepGradient);

            var newlyBroken = stepLogits.argmax(1).ne(labels);
            bestAdversarial.copy_(where(newlyBroken.view(-1, 1, 1, 1), adversarial, bestAdversarial));
            broken.logical_or_(newlyBroken);
            increases.add_(stepLoss.gt(lastLoss).to(ScalarType.Float32));
            lastLoss.copy_(stepLoss);
            var improved = stepLoss.gt(bestLoss);
            var improvedMask = improved.view(-1, 1, 1, 1);
            best.copy_(where(improvedMask, adversarial, best));
            bestGradient.copy_(where(improvedMask, gradient, bestGradient));
            bestLoss.copy_(where(improved, stepLoss, bestLoss));

            if (checkpoints.Contains(step + 1))
            {
                // Halve the step where the loss rose in too few steps, or where the last halving brought no gain.
                var sinceCheck = Math.Max(1, step + 1 - PreviousCheckpoint(step + 1));
                var oscillating = increases.le(options.Rho * sinceCheck);
                var stalled = reducedAtCheck.logical_not().logical_and(bestLossAtCheck.ge(bestLoss));
                var reduce = oscillating.logical_or(stalled);
                reducedAtCheck.copy_(reduce);
                bestLossAtCheck.copy_(bestLoss);
                increases.zero_();
                var mask = reduce.view(-1, 1, 1, 1);
                stepSize.copy_(where(mask, stepSize / 2, stepSize));
                adversarial.copy_(where(mask, best, adversarial));
                gradient.copy_(where(mask, bestGradient, gradient));
            }
        }
        var result = where(broken.view(-1, 1, 1, 1), bestAdversarial, best);
        return (result.MoveToOuterDisposeScope(), broken.MoveToOuterDisposeScope());

        int PreviousCheckpoint(int current) => checkpoints.Where(c => c < current).DefaultIfEmpty(0).Max();
    }

    private (Tensor Logits, Tensor Loss, Tensor Gradient) LossAndGradient(IClassifier model, Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var x = images.detach().requires_grad_(true);
        var logits = model.Logits(x);
        var loss = options.Loss == ApgdLoss.CrossEntropy ? functional.cross_entropy(logits, labels, reduction: Reduction.None) : DlrLoss(logits, labels);
        var gradient = autograd.grad([loss.sum()], [x])[0];
        return (logits.detach().MoveToOuterDisposeScope(), loss.detach().MoveToOuterDisposeScope(), gradient.detach().MoveToOuterDisposeScope());
    }

    /// <summary>DLR = -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3), with z sorted descending as π.</summary>
    internal static Tensor DlrLoss(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var sorted = logits.sort(1, descending: true).Values;
        var trueLogit = logits.gather(1, labels.view(-1, 1)).squeeze(1);
        var isTop = sorted.select(1, 0).eq(trueLogit);
        var bestOther = where(isTop, sorted.select(1, 1), sorted.select(1, 0));
        var scale = sorted.select(1, 0) - sorted.select(1, 2) + 1e-12;
        return (-(trueLogit - bestOther) / scale).MoveToOuterDisposeScope();
    }
}
