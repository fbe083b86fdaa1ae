using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// The loss APGD ascends: cross-entropy, the scale-invariant difference of logits ratio, or its targeted form (APGD-T), which
/// pushes one chosen other class above the true one and is run once for each of the classes ranked 2nd, 3rd, ... on the clean input.
/// </summary>
public enum ApgdLoss
{
    CrossEntropy,
    Dlr,
    TargetedDlr,
}

/// <summary>
/// Settings of Auto-PGD (Croce &amp; Hein, 2020), L-infinity. <paramref name="TargetClasses"/> is how many target classes APGD-T
/// tries (AutoAttack's standard: 9, every other class of MNIST); it is ignored by the untargeted losses.
/// </summary>
public sealed record ApgdOptions(double Epsilon, int Steps = 100, int Restarts = 1, ApgdLoss Loss = ApgdLoss.CrossEntropy, double Rho = 0.75, int Seed = 0,
    int TargetClasses = 9)
{
    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        if (Steps <= 0) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "APGD steps must be at least 1");
        if (Restarts <= 0) throw new ArgumentOutOfRangeException(nameof(Restarts), Restarts, "restarts must be at least 1");
        if (!(Rho > 0 && Rho <= 1)) throw new ArgumentOutOfRangeException(nameof(Rho), Rho, "rho must be in (0, 1]");
        if (TargetClasses <= 0) throw new ArgumentOutOfRangeException(nameof(TargetClasses), TargetClasses, "APGD-T needs at least 1 target class");
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

    public string Name => options.Loss switch
    {
        ApgdLoss.CrossEntropy => $"apgd-ce(eps={options.Epsilon},steps={options.Steps},restarts={options.Restarts})",
        ApgdLoss.Dlr => $"apgd-dlr(eps={options.Epsilon},steps={options.Steps},restarts={options.Restarts})",
        _ => $"apgd-t(eps={options.Epsilon},steps={options.Steps},restarts={options.Restarts},targets={options.TargetClasses})",
    };
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

    /// <summary>
    /// Untargeted in the evaluator's sense: <paramref name="labels"/> are the true labels. Each restart (and, for APGD-T, each target
    /// class) runs on the inputs no earlier run broke; an input keeps the first example that broke it, else the highest-loss one.
    /// </summary>
    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        using var scope = NewDisposeScope();
        var targeted = options.Loss == ApgdLoss.TargetedDlr;
        if (targeted && options.TargetClasses > model.ClassCount - 1)
            throw new ArgumentException($"APGD-T: {options.TargetClasses} target classes asked, but a {model.ClassCount}-class model has only {model.ClassCount - 1} other classes");
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        var result = original.clone();
        var broken = zeros(original.shape[0], dtype: ScalarType.Bool);
        Tensor? ranking = null;
        if (targeted)
        {
            using var noGrad = no_grad();
            ranking = model.Logits(original).argsort(1, descending: true);
        }
        var first = true;
        for (var target = 1; target <= (targeted ? options.TargetClasses : 1); target++)
        {
            for (var restart = 0; restart < options.Restarts; restart++)
            {
                using var runScope = NewDisposeScope();
                var pending = broken.logical_not().nonzero().view(-1);
                if (pending.shape[0] == 0) break;
                var x = original.index_select(0, pending);
                var y = labels.index_select(0, pending);
                var targets = ranking?.select(1, target).index_select(0, pending);
                var (adversarial, newlyBroken) = Attack(model, x, y, targets, generator);
                // The first run sets every pending input's example (its highest-loss point); later runs replace only where they broke it.
                var take = first ? ones_like(newlyBroken) : newlyBroken;
                var rows = pending.masked_select(take);
                result.index_copy_(0, rows, adversarial.index_select(0, take.nonzero().view(-1)));
                broken.index_fill_(0, pending.masked_select(newlyBroken), true);
                first = false;
            }
        }
        ranking?.Dispose();
        return result.detach().MoveToOuterDisposeScope();
    }

    private (Tensor Adversarial, Tensor Broken) Attack(IClassifier model, Tensor original, Tensor labels, Tensor? targets, Generator generator)
    {
        using var scope = NewDisposeScope();
        var eps = options.Epsilon;
        var count = original.shape[0];
        var checkpoints = new HashSet<int>(Checkpoints(options.Steps));
        Tensor Project(Tensor x) => AttackMath.Project(x, original, eps, PerturbationNorm.LInf);

        // As the reference: a uniform draw rescaled so that its largest coordinate sits on the eps-sphere, then clipped to [0, 1].
        var draw = rand(original.shape, generator: generator) * 2 - 1;
        var adversarial = Project(original + eps * draw / (draw.flatten(1).abs().amax(1).view(-1, 1, 1, 1) + 1e-12));
        var (logits, loss, gradient) = LossAndGradient(model, adversarial, labels, targets);
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
        // The reference starts as if the step had just been reduced, so the first checkpoint halves only on oscillation.
        var reducedAtCheck = ones(count, dtype: ScalarType.Bool);

        // State lives in the tensors above and is updated in place; each step's temporaries die with its scope.
        for (var step = 0; step < options.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var momentum = step == 0 ? 1.0 : 0.75;
            var z = Project(adversarial + stepSize * gradient.sign());
            var next = Project(adversarial + momentum * (z - adversarial) + (1 - momentum) * (adversarial - previous));
            previous.copy_(adversarial);
            adversarial.copy_(next);
            var (stepLogits, stepLoss, stepGradient) = LossAndGradient(model, adversarial, labels, targets);
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

    private (Tensor Logits, Tensor Loss, Tensor Gradient) LossAndGradient(IClassifier model, Tensor images, Tensor labels, Tensor? targets)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var x = images.detach().requires_grad_(true);
        var logits = model.Logits(x);
        var loss = options.Loss switch
        {
            ApgdLoss.CrossEntropy => functional.cross_entropy(logits, labels, reduction: Reduction.None),
            ApgdLoss.Dlr => DlrLoss(logits, labels),
            _ => TargetedDlrLoss(logits, labels, targets!),
        };
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

    /// <summary>Targeted DLR = -(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2), with z sorted descending as π; needs at least 4 classes.</summary>
    internal static Tensor TargetedDlrLoss(Tensor logits, Tensor labels, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var sorted = logits.sort(1, descending: true).Values;
        var trueLogit = logits.gather(1, labels.view(-1, 1)).squeeze(1);
        var targetLogit = logits.gather(1, targets.view(-1, 1)).squeeze(1);
        var scale = sorted.select(1, 0) - 0.5 * (sorted.select(1, 2) + sorted.select(1, 3)) + 1e-12;
        return (-(trueLogit - targetLogit) / scale).MoveToOuterDisposeScope();
    }
}
