using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// Settings of the Square attack (Andriushchenko et al., 2020), L-infinity, with AutoAttack's defaults: 5,000 queries per input
/// and restart, and p_init 0.8 (the share of pixels the first squares cover).
/// </summary>
public sealed record SquareOptions(double Epsilon, int Queries = 5000, double PInit = 0.8, int Restarts = 1, int Seed = 0)
{
    /// <summary>The most queries one input may cost (a budget of this size takes days on a CPU, so larger asks are mistakes).</summary>
    public const int MaxQueries = 1_000_000;

    public void Validate()
    {
        AttackMath.Validate(Epsilon, nameof(Epsilon));
        if (Queries is <= 0 or > MaxQueries) throw new ArgumentOutOfRangeException(nameof(Queries), Queries, $"square queries must be in [1, {MaxQueries}]");
        if (!(PInit > 0 && PInit <= 1)) throw new ArgumentOutOfRangeException(nameof(PInit), PInit, "p_init must be in (0, 1]");
        if (Restarts <= 0) throw new ArgumentOutOfRangeException(nameof(Restarts), Restarts, "restarts must be at least 1");
    }
}

/// <summary>
/// A score-based black-box attack: it sees only the model's logits, never a gradient. It starts from vertical stripes of ±eps and
/// then, query by query, sets a random square of the image to a random corner of the eps-ball, keeping the change when the margin
/// (true logit minus the best other) falls. The square's side shrinks on the reference schedule. Because it needs no gradient,
/// a model that masks its gradients (saturated softmax, shattered or zero gradients) does not fool it: a white-box figure far
/// above Square's is the sign of masking, not of robustness.
/// </summary>
public sealed class Square : IEvasionAttack
{
    private readonly SquareOptions options;

    public Square(SquareOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"square(eps={options.Epsilon},queries={options.Queries},p_init={options.PInit},restarts={options.Restarts})";
    public PerturbationNorm Norm => PerturbationNorm.LInf;
    public double Epsilon => options.Epsilon;
    public bool Targeted => false;

    /// <summary>Queries the model answered in the last <see cref="Generate"/> call, summed over inputs (for throughput figures).</summary>
    public long LastQueries { get; private set; }

    /// <summary>The share of pixels a square covers at query <paramref name="iteration"/>: p_init halved at 10, 50, 200, 500, 1k, 2k, 4k, 6k and 8k queries.</summary>
    internal static double SquareShare(int iteration, double pInit)
    {
        int[] bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
        var halvings = bounds.Count(b => iteration > b);
        return pInit / Math.Pow(2, halvings);
    }

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (images.dim() != 4) throw new ArgumentException($"square expects images [N, C, H, W], got [{string.Join(",", images.shape)}]");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        var result = original.clone();
        var broken = zeros(original.shape[0], dtype: ScalarType.Bool);
        LastQueries = 0;
        for (var restart = 0; restart < options.Restarts; restart++)
        {
            using var runScope = NewDisposeScope();
            var pending = broken.logical_not().nonzero().view(-1);
            if (pending.shape[0] == 0) break;
            var (adversarial, newlyBroken) = Run(model, original.index_select(0, pending), labels.index_select(0, pending), generator);
            var rows = pending.masked_select(newlyBroken);
            result.index_copy_(0, rows, adversarial.index_select(0, newlyBroken.nonzero().view(-1)));
            broken.index_fill_(0, rows, true);
        }
        return result.MoveToOuterDisposeScope();
    }

    private (Tensor Adversarial, Tensor Broken) Run(IClassifier model, Tensor original, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var eps = options.Epsilon;
        var (count, channels, height, width) = (original.shape[0], original.shape[1], original.shape[2], original.shape[3]);
        var lower = (original - eps).clamp(0, 1);
        var upper = (original + eps).clamp(0, 1);

        // Vertical stripes: each column of each channel moved by +eps or -eps.
        var best = (original + eps * RandomSigns([count, channels, 1, width], generator)).clamp(0, 1);
        var margin = Margin(model, best, labels);
        LastQueries += count;
        var rowsIndex = arange(height).view(1, height, 1);
        var columnsIndex = arange(width).view(1, 1, width);

        for (var iteration = 0; iteration < options.Queries - 1; iteration++)
        {
            using var stepScope = NewDisposeScope();
            var open = margin.gt(0).nonzero().view(-1);
            var n = open.shape[0];
            if (n == 0) break;
            var side = (int)Math.Round(Math.Sqrt(SquareShare(iteration, options.PInit) * height * width));
            side = Math.Clamp(side, 1, (int)Math.Min(height, width));
            var top = randint(0, height - side + 1, [n], generator: generator).view(-1, 1, 1);
            var left = randint(0, width - side + 1, [n], generator: generator).view(-1, 1, 1);
            var inSquare = rowsIndex.ge(top).logical_and(rowsIndex.lt(top + side))
                .logical_and(columnsIndex.ge(left)).logical_and(columnsIndex.lt(left + side)).unsqueeze(1);
            var current = best.index_select(0, open);
            // Every pixel of the square goes to one corner of the eps-ball (per channel), then back inside [x - eps, x + eps] and [0, 1].
            var candidate = current + inSquare.to(current.dtype) * (2 * eps) * RandomSigns([n, channels, 1, 1], generator);
            candidate = minimum(maximum(candidate, lower.index_select(0, open)), upper.index_select(0, open));
            var candidateMargin = Margin(model, candidate, labels.index_select(0, open));
            LastQueries += n;
            var better = candidateMargin.lt(margin.index_select(0, open));
            var improved = open.masked_select(better);
            best.index_copy_(0, improved, candidate.index_select(0, better.nonzero().view(-1)));
            margin.index_copy_(0, improved, candidateMargin.masked_select(better));
        }
        return (best.MoveToOuterDisposeScope(), margin.le(0).MoveToOuterDisposeScope());
    }

    /// <summary>True logit minus the largest other logit: positive while the input is classified correctly; +inf for a refused answer (no progress).</summary>
    private static Tensor Margin(IClassifier model, Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var logits = model.Logits(images);
        var trueLogit = logits.gather(1, labels.view(-1, 1)).squeeze(1);
        var isTrue = arange(logits.shape[1]).unsqueeze(0).eq(labels.view(-1, 1));
        var others = logits.masked_fill(isTrue, float.NegativeInfinity);
        return (trueLogit - others.amax(1)).nan_to_num(float.PositiveInfinity).MoveToOuterDisposeScope();
    }

    private static Tensor RandomSigns(long[] shape, Generator generator) =>
        randint(0, 2, shape, generator: generator).to(ScalarType.Float32) * 2 - 1;
}
