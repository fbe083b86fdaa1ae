using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Settings of projected gradient descent (Madry et al., 2018), in the field's usual names.</summary>
public sealed record PgdOptions(
    double Epsilon, double StepSize, int Steps, int Restarts = 1, bool RandomStart = true,
    PerturbationNorm Norm = PerturbationNorm.LInf, bool Targeted = false, int Seed = 0)
{
    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        if (!(StepSize > 0) || double.IsInfinity(StepSize)) throw new ArgumentOutOfRangeException(nameof(StepSize), StepSize, "step size (alpha) must be a finite number > 0");
        ArgumentOutOfRangeException.ThrowIfNegative(Steps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Restarts);
        if (Restarts > 1 && !RandomStart) throw new ArgumentException("restarts > 1 need a random start (without one every restart is the same)", nameof(Restarts));
    }
}

/// <summary>
/// Iterated gradient steps, each projected back onto the eps-ball and [0, 1]. With several restarts,
/// each input keeps its strongest example: a successful one if any restart succeeded, else the one of highest loss.
/// </summary>
public sealed class Pgd : IEvasionAttack
{
    private readonly PgdOptions options;

    public Pgd(PgdOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"pgd-{(Norm == PerturbationNorm.LInf ? "linf" : "l2")}{(Targeted ? "-targeted" : "")}(eps={options.Epsilon},alpha={options.StepSize},steps={options.Steps},restarts={options.Restarts})";
    public PerturbationNorm Norm => options.Norm;
    public double Epsilon => options.Epsilon;
    public bool Targeted => options.Targeted;

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        var loss = AttackMath.CrossEntropy(labels);
        Tensor? best = null, bestSuccess = null, bestLoss = null;
        for (var restart = 0; restart < options.Restarts; restart++)
        {
            var adversarial = Iterate(model, original, loss, generator);
            if (options.Restarts == 1) return adversarial.detach().MoveToOuterDisposeScope();

            using var noGrad = no_grad();
            var logits = model.Logits(adversarial);
            var success = AttackMath.Succeeded(logits, labels, options.Targeted);
            var objective = options.Targeted ? -loss(logits) : loss(logits);
            if (best is null)
            {
                (best, bestSuccess, bestLoss) = (adversarial, success, objective);
                continue;
            }
            // Better: succeeds where the kept one does not, or equally successful with a higher objective.
            var better = success.logical_and(bestSuccess!.logical_not())
                .logical_or(success.eq(bestSuccess!).logical_and(objective.gt(bestLoss!)));
            best = where(better.view(-1, 1, 1, 1), adversarial, best);
            bestSuccess = bestSuccess!.logical_or(success);
            bestLoss = where(better, objective, bestLoss!);
        }
        return best!.detach().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The same projected ascent on any per-example loss of the logits, one start (used by TRADES, whose inner
    /// maximisation ascends the KL divergence from the clean prediction instead of the cross-entropy).
    /// </summary>
    public Tensor Ascend(IClassifier model, Tensor images, Func<Tensor, Tensor> perExampleLoss)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        return Iterate(model, images.detach(), perExampleLoss, new Generator((ulong)options.Seed)).detach().MoveToOuterDisposeScope();
    }

    private Tensor Iterate(IClassifier model, Tensor original, Func<Tensor, Tensor> loss, Generator generator)
    {
        using var scope = NewDisposeScope();
        var adversarial = options.RandomStart ? RandomStart(original, generator) : original.clone();
        for (var step = 0; step < options.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var (gradient, _) = AttackMath.Gradient(model, adversarial, loss);
            var direction = options.Norm == PerturbationNorm.LInf
                ? gradient.sign()
                : gradient / AttackMath.L2Norm(gradient).clamp_min(1e-12);
            if (options.Targeted) direction = -direction;
            adversarial.copy_(AttackMath.Project(adversarial + options.StepSize * direction, original, options.Epsilon, options.Norm));
        }
        return adversarial.MoveToOuterDisposeScope();
    }

    private Tensor RandomStart(Tensor original, Generator generator)
    {
        using var scope = NewDisposeScope();
        Tensor delta;
        if (options.Norm == PerturbationNorm.LInf)
        {
            delta = (rand(original.shape, generator: generator) * 2 - 1) * options.Epsilon;
        }
        else
        {
            // Uniform in the L2 ball: a Gaussian direction scaled to radius eps * u^(1/d).
            var direction = randn(original.shape, generator: generator);
            direction /= AttackMath.L2Norm(direction).clamp_min(1e-12);
            var dimensions = original[0].numel();
            var radius = rand(original.shape[0], 1, 1, 1, generator: generator).pow(1.0 / dimensions) * options.Epsilon;
            delta = direction * radius;
        }
        return (original + delta).clamp(0, 1).MoveToOuterDisposeScope();
    }
}
