using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// Settings of the targeted Fast Adaptive Boundary attack (Croce &amp; Hein, 2020), L-infinity, with AutoAttack's defaults:
/// 100 iterations per target, 9 target classes, 1 restart, alpha_max 0.1, overshoot eta 1.05, backward step beta 0.9.
/// <paramref name="Epsilon"/> is the budget a found example must stay within to count (and the radius of restarts' random starts).
/// </summary>
public sealed record FabOptions(double Epsilon, int Steps = 100, int TargetClasses = 9, int Restarts = 1, double AlphaMax = 0.1, double Eta = 1.05,
    double Beta = 0.9, int Seed = 0)
{
    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        if (Steps <= 0) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "FAB steps must be at least 1");
        if (TargetClasses <= 0) throw new ArgumentOutOfRangeException(nameof(TargetClasses), TargetClasses, "FAB-T needs at least 1 target class");
        if (Restarts <= 0) throw new ArgumentOutOfRangeException(nameof(Restarts), Restarts, "restarts must be at least 1");
        if (!(AlphaMax >= 0 && AlphaMax <= 1)) throw new ArgumentOutOfRangeException(nameof(AlphaMax), AlphaMax, "alpha_max must be in [0, 1]");
        if (!(Eta >= 1) || double.IsInfinity(Eta)) throw new ArgumentOutOfRangeException(nameof(Eta), Eta, "the overshoot eta must be a finite number >= 1");
        if (!(Beta > 0 && Beta <= 1)) throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "the backward step beta must be in (0, 1]");
    }
}

/// <summary>
/// FAB-T: a minimum-norm attack. At each step it linearises the difference between a target class's logit and the true one, and
/// moves to the closest point of that linear boundary (within [0, 1]), biased towards the original image so that the example it
/// finds is close to it; every success is pulled back towards the original by beta and the search goes on. The targets are the
/// classes ranked 2nd, 3rd, ... on the clean input. An example counts for robustness only within eps; <see cref="MinimumNorms"/>
/// gives the norms themselves.
/// </summary>
public sealed class FabTargeted : IEvasionAttack
{
    private readonly FabOptions options;

    public FabTargeted(FabOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"fab-t(eps={options.Epsilon},steps={options.Steps},restarts={options.Restarts},targets={options.TargetClasses})";
    public PerturbationNorm Norm => PerturbationNorm.LInf;
    public double Epsilon => options.Epsilon;
    public bool Targeted => false;

    /// <summary>Examples within eps where FAB-T found one; the clean image elsewhere.</summary>
    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var (adversarial, norms) = MinimumNorms(model, images, labels, stopAtEpsilon: true);
        var within = norms.le(options.Epsilon).view(-1, 1, 1, 1);
        return where(within, adversarial, images.detach()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The closest misclassified example found for each input and its L-inf distance (+infinity where none was found).
    /// With <paramref name="stopAtEpsilon"/>, an input leaves the search once it has one within eps, as AutoAttack does.
    /// </summary>
    public (Tensor Adversarial, Tensor Norms) MinimumNorms(IClassifier model, Tensor images, Tensor labels, bool stopAtEpsilon = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (options.TargetClasses > model.ClassCount - 1)
            throw new ArgumentException($"FAB-T: {options.TargetClasses} target classes asked, but a {model.ClassCount}-class model has only {model.ClassCount - 1} other classes");
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        var best = original.clone();
        var norms = full(original.shape[0], double.PositiveInfinity, dtype: ScalarType.Float32);
        Tensor ranking, correct;
        using (no_grad())
        {
            var logits = model.Logits(original);
            ranking = logits.argsort(1, descending: true);
            correct = logits.argmax(1).eq(labels);
        }
        // A misclassified input needs no perturbation.
        norms.masked_fill_(correct.logical_not(), 0);
        for (var target = 1; target <= options.TargetClasses; target++)
        {
            for (var restart = 0; restart < options.Restarts; restart++)
            {
                using var runScope = NewDisposeScope();
                var searching = stopAtEpsilon ? correct.logical_and(norms.gt(options.Epsilon)) : correct;
                var pending = searching.nonzero().view(-1);
                if (pending.shape[0] == 0) break;
                var (found, foundNorms) = Search(model, original.index_select(0, pending), labels.index_select(0, pending),
                    ranking.select(1, target).index_select(0, pending), restart > 0, generator);
                var closer = foundNorms.lt(norms.index_select(0, pending));
                var rows = pending.masked_select(closer);
                var chosen = closer.nonzero().view(-1);
                best.index_copy_(0, rows, found.index_select(0, chosen));
                norms.index_copy_(0, rows, foundNorms.index_select(0, chosen));
            }
        }
        return (best.MoveToOuterDisposeScope(), norms.MoveToOuterDisposeScope());
    }

    private (Tensor Adversarial, Tensor Norms) Search(IClassifier model, Tensor original, Tensor labels, Tensor targets, bool randomStart, Generator generator)
    {
        using var scope = NewDisposeScope();
        var count = original.shape[0];
        var flatOriginal = original.flatten(1).to(ScalarType.Float64);
        var point = original.clone();
        if (randomStart)
        {
            // As the reference: a uniform draw rescaled to L-inf radius eps / 2.
            var draw = rand(original.shape, generator: generator) * 2 - 1;
            point = (original + 0.5 * options.Epsilon * draw / (draw.flatten(1).abs().amax(1).view(-1, 1, 1, 1) + 1e-12)).clamp(0, 1);
        }
        var best = original.clone();
        var bestNorms = full(count, double.PositiveInfinity, dtype: ScalarType.Float32);
        for (var step = 0; step < options.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            // The boundary of the target, linearised at the current point: w·x = b, with w the gradient of z_t - z_y and b = w·x1 - (z_t - z_y).
            var (difference, gradient) = TargetMargin(model, point, labels, targets);
            var w = gradient.flatten(1).to(ScalarType.Float64);
            var flatPoint = point.flatten(1).to(ScalarType.Float64);
            var b = (w * flatPoint).sum(1) - difference.to(ScalarType.Float64);
            var fromPoint = ProjectLInf(flatPoint, w, b);
            var fromOriginal = ProjectLInf(flatOriginal, w, b);
            var a1 = fromPoint.abs().amax([1], keepdim: true).clamp_min(1e-8);
            var a2 = fromOriginal.abs().amax([1], keepdim: true).clamp_min(1e-8);
            var alpha = (a1 / (a1 + a2)).clamp(0, options.AlphaMax);
            var next = ((flatPoint + options.Eta * fromPoint) * (1 - alpha) + (flatOriginal + options.Eta * fromOriginal) * alpha).clamp(0, 1);
            point.copy_(next.to(ScalarType.Float32).view(original.shape));

            Tensor isAdversarial;
            using (no_grad()) isAdversarial = model.Logits(point).argmax(1).ne(labels);
            var distance = (point - original).flatten(1).abs().amax(1);
            var closer = isAdversarial.logical_and(distance.lt(bestNorms));
            best.copy_(where(closer.view(-1, 1, 1, 1), point, best));
            bestNorms.copy_(where(closer, distance, bestNorms));
            // From every success, step back towards the original and keep searching for a closer one.
            point.copy_(where(isAdversarial.view(-1, 1, 1, 1), original + (point - original) * options.Beta, point));
        }
        return (best.MoveToOuterDisposeScope(), bestNorms.MoveToOuterDisposeScope());
    }

    private static (Tensor Difference, Tensor Gradient) TargetMargin(IClassifier model, Tensor images, Tensor labels, Tensor targets)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var x = images.detach().requires_grad_(true);
        var logits = model.Logits(x);
        var difference = logits.gather(1, targets.view(-1, 1)).squeeze(1) - logits.gather(1, labels.view(-1, 1)).squeeze(1);
        var gradient = autograd.grad([difference.sum()], [x])[0];
        return (difference.detach().MoveToOuterDisposeScope(), gradient.detach().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The perturbation d of least L-inf norm that puts t + d on the hyperplane w·x = b while keeping t + d in [0, 1], per row.
    /// Moving every coordinate by r towards the plane (each capped by its room to the box) changes w·x by
    /// g(r) = Σ |w_i| min(r, room_i), which is piecewise linear and increasing: sorting the rooms finds the segment where g reaches
    /// the gap, and the radius on it. Where the box does not allow reaching the plane, every coordinate moves by all its room.
    /// </summary>
    internal static Tensor ProjectLInf(Tensor points, Tensor w, Tensor b)
    {
        using var scope = NewDisposeScope();
        var columns = points.shape[1];
        var gap = (w * points).sum(1) - b;
        var towards = -gap.sign().unsqueeze(1) * w.sign();
        var room = where(towards.gt(0), 1 - points, points);
        var need = gap.abs();
        var (sortedRoom, order) = room.sort(1);
        var weights = w.abs().gather(1, order);
        var weighted = weights * sortedRoom;
        var before = weighted.cumsum(1) - weighted;
        var after = weights.flip(1).cumsum(1).flip(1);
        var reach = before + sortedRoom * after;
        var segment = reach.lt(need.unsqueeze(1)).sum(1, keepdim: true);
        var feasible = segment.lt(columns).squeeze(1);
        var index = segment.clamp_max(columns - 1);
        var radius = ((need.unsqueeze(1) - before.gather(1, index)) / after.gather(1, index).clamp_min(1e-30)).squeeze(1).clamp_min(0);
        radius = where(feasible, radius, sortedRoom.select(1, columns - 1));
        return (towards * minimum(radius.unsqueeze(1), room)).MoveToOuterDisposeScope();
    }
}
