using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// Settings of the Carlini–Wagner L2 attack. Defaults are sized for a CPU: fewer iterations than the
/// paper's 10,000, with a binary search over the constant c per input.
/// </summary>
public sealed record CarliniWagnerOptions(
    double Confidence = 0, double LearningRate = 0.05, int BinarySearchSteps = 5, int MaxIterations = 100,
    double InitialConst = 1.0, bool Targeted = false)
{
    public void Validate()
    {
        if (!(Confidence >= 0) || double.IsInfinity(Confidence)) throw new ArgumentOutOfRangeException(nameof(Confidence), Confidence, "confidence (kappa) must be a finite number >= 0");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be a finite number > 0");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BinarySearchSteps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxIterations);
        if (!(InitialConst > 0) || double.IsInfinity(InitialConst)) throw new ArgumentOutOfRangeException(nameof(InitialConst), InitialConst, "initial constant c must be a finite number > 0");
    }
}

/// <summary>
/// Carlini & Wagner (2017), L2 variant: optimise w with Adam where x' = (tanh(w) + 1) / 2, minimising
/// ||x' - x||² + c · max(Z_y - max_{i≠y} Z_i + kappa, 0), with a binary search over c per input and early abort when the loss stalls. Keeps the
/// smallest successful perturbation; inputs it cannot break are returned unchanged.
/// </summary>
public sealed class CarliniWagnerL2 : IEvasionAttack
{
    private const double Unbounded = 1e10;
    private readonly CarliniWagnerOptions options;

    public CarliniWagnerL2(CarliniWagnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"cw-l2{(Targeted ? "-targeted" : "")}(kappa={options.Confidence},c0={options.InitialConst},search={options.BinarySearchSteps},steps={options.MaxIterations},lr={options.LearningRate})";
    public PerturbationNorm Norm => PerturbationNorm.L2;
    public double Epsilon => double.PositiveInfinity;
    public bool Targeted => options.Targeted;

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var original = images.detach();
        var count = original.shape[0];
        var oneHot = functional.one_hot(labels, model.ClassCount).to(ScalarType.Float32);
        var lower = zeros(count);
        var upper = full(count, Unbounded);
        var constant = full(count, options.InitialConst);
        var bestDistance = full(count, double.PositiveInfinity);
        var best = original.clone();
        var start = (original * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6).atanh();

        for (var search = 0; search < options.BinarySearchSteps; search++)
        {
            using var searchScope = NewDisposeScope();
            var w = new TorchSharp.Modules.Parameter(start.clone(), requires_grad: true);
            using var adam = optim.Adam([w], options.LearningRate);
            var succeeded = zeros(count, dtype: ScalarType.Bool);
            var previousLoss = double.PositiveInfinity;
            var checkEvery = Math.Max(1, options.MaxIterations / 10);
            for (var iteration = 0; iteration < options.MaxIterations; iteration++)
            {
                using var stepScope = NewDisposeScope();
                using var enable = enable_grad();
                var adversarial = (w.tanh() + 1) / 2;
                var logits = model.Logits(adversarial);
                var real = (logits * oneHot).sum(1);
                var other = (logits - oneHot * 1e4).amax(1);
                var margin = options.Targeted ? other - real : real - other;
                var distance = (adversarial - original).square().flatten(1).sum(1);
                var loss = distance + constant * (margin + options.Confidence).clamp_min(0);
                adam.zero_grad();
                var total = loss.sum();
                total.backward();
                adam.step();

                using var noGrad = no_grad();
                var success = margin.le(-options.Confidence).logical_and(AttackMath.Succeeded(logits, labels, options.Targeted));
                var improved = success.logical_and(distance.lt(bestDistance));
                bestDistance.copy_(where(improved, distance, bestDistance));
                best.copy_(where(improved.view(-1, 1, 1, 1), adversarial.detach(), best));
                succeeded.logical_or_(success);

                // Abort early, as the reference implementation does, once the loss has stopped falling.
                if ((iteration + 1) % checkEvery == 0)
                {
                    var current = total.item<float>();
                    if (current > previousLoss * 0.9999) break;
                    previousLoss = current;
                }
            }
            using var update = no_grad();
            // Succeeded: try a smaller c. Failed: larger c (x10 until an upper bound is known).
            upper.copy_(where(succeeded, minimum(upper, constant), upper));
            lower.copy_(where(succeeded, lower, maximum(lower, constant)));
            var bounded = upper.lt(Unbounded / 10);
            constant.copy_(where(bounded, (lower + upper) / 2, constant * 10));
        }
        return best.detach().MoveToOuterDisposeScope();
    }
}
