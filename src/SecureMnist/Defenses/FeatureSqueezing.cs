using SecureMnist.Attacks.Evasion;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>Feature-squeezing settings (Xu et al. 2018, MNIST configuration: 1-bit depth and a 2x2 median filter).</summary>
public sealed record SqueezingOptions(int BitDepth = 1, int MedianWindow = 2, double FalsePositiveRate = 0.05, double Confidence = 0.95)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(BitDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(BitDepth, 8);
        ArgumentOutOfRangeException.ThrowIfLessThan(MedianWindow, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MedianWindow, 5);
        if (FalsePositiveRate is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(FalsePositiveRate), FalsePositiveRate, "the false-positive rate must be in (0, 1)");
        if (Confidence is < 0.5 or >= 1) throw new ArgumentOutOfRangeException(nameof(Confidence), Confidence, "the confidence must be in [0.5, 1)");
    }
}

/// <summary>
/// Adversarial-input detection by feature squeezing: an adversarial perturbation is fragile, so the model's
/// prediction on a squeezed copy (fewer bits, median-smoothed) moves far from its prediction on the input, while a
/// clean digit's barely moves. Score = largest L1 distance between the softmax outputs; flagged above a threshold
/// calibrated on clean digits.
/// </summary>
public sealed class FeatureSqueezing
{
    public FeatureSqueezing(SqueezingOptions options, double threshold)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Threshold = threshold;
    }

    public SqueezingOptions Options { get; }

    /// <summary>Scores above this are flagged as adversarial.</summary>
    public double Threshold { get; }

    public static FeatureSqueezing Calibrate(IClassifier model, Tensor cleanImages, SqueezingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var scores = ProbabilitiesAndScores(model, cleanImages, options, keepProbabilities: false).Scores;
        return new FeatureSqueezing(options, ThresholdCalibration.AboveThreshold(scores, options.FalsePositiveRate, options.Confidence));
    }

    /// <summary>Squeezing scores of the inputs.</summary>
    public double[] Scores(IClassifier model, Tensor images) => ProbabilitiesAndScores(model, images, Options, keepProbabilities: false).Scores;

    /// <summary>
    /// Softmax outputs of the inputs and their squeezing scores, from one forward pass per chunk over the inputs and
    /// both squeezed copies stacked together (one larger batch is cheaper than three small ones; chunks keep the
    /// stacked batch bounded).
    /// </summary>
    public (Tensor Probabilities, double[] Scores) ProbabilitiesAndScores(IClassifier model, Tensor images)
    {
        var (probabilities, scores) = ProbabilitiesAndScores(model, images, Options, keepProbabilities: true);
        return (probabilities!, scores);
    }

    private const int ChunkSize = 500;

    private static (Tensor? Probabilities, double[] Scores) ProbabilitiesAndScores(IClassifier model, Tensor images, SqueezingOptions options, bool keepProbabilities)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var total = images.shape[0];
        if (total == 0) return (keepProbabilities ? empty(0, model.ClassCount).MoveToOuterDisposeScope() : null, []);
        var probabilities = new List<Tensor>();
        var scores = new List<Tensor>();
        for (long start = 0; start < total; start += ChunkSize)
        {
            var chunk = images.narrow(0, start, Math.Min(ChunkSize, total - start));
            var count = chunk.shape[0];
            var all = nn.functional.softmax(model.Logits(cat([chunk, ReduceBitDepth(chunk, options.BitDepth), MedianFilter(chunk, options.MedianWindow)], 0)), 1);
            var (plain, depth, median) = (all.narrow(0, 0, count), all.narrow(0, count, count), all.narrow(0, 2 * count, count));
            scores.Add(Score(plain, depth, median));
            if (keepProbabilities) probabilities.Add(plain);
        }
        var score = cat(scores, 0).to(ScalarType.Float64).data<double>().ToArray();
        return (keepProbabilities ? cat(probabilities, 0).contiguous().MoveToOuterDisposeScope() : null, score);
    }

    /// <summary>The score from the softmax outputs on the input and its two squeezed copies: the larger L1 distance.</summary>
    public static Tensor Score(Tensor plain, Tensor depth, Tensor median)
    {
        ArgumentNullException.ThrowIfNull(plain);
        return maximum((plain - depth).abs().sum(1), (plain - median).abs().sum(1));
    }

    /// <summary>Rounds values in [0, 1] to 2^bits levels.</summary>
    public static Tensor ReduceBitDepth(Tensor images, int bits)
    {
        ArgumentNullException.ThrowIfNull(images);
        var levels = (1 << bits) - 1;
        return (images * levels).round() / levels;
    }

    /// <summary>
    /// Median over a window x window neighbourhood, as EvadeML-Zoo computes it with scipy's median_filter(size=window, mode='reflect'):
    /// the window spans [i - window/2, i + (window-1)/2], edges are mirrored including the edge pixel (d c b a | a b c d), and for an even
    /// window the upper of the two middle values is taken (scipy's rank window²/2). For the MNIST setting (2x2) each pixel is the
    /// upper median of itself, its upper and left neighbours and the pixel diagonally up-left.
    /// </summary>
    public static Tensor MedianFilter(Tensor images, int window)
    {
        ArgumentNullException.ThrowIfNull(images);
        var (height, width) = (images.shape[2], images.shape[3]);
        if (window > height || window > width) throw new ArgumentException($"a {window}x{window} median needs images at least that large, got {height}x{width}");
        return window == 2 ? UpperMedianOf2x2(images) : MedianBySorting(images, window);
    }

    /// <summary>
    /// The 2x2 case without unfold or sort, which were the service's detector's main cost: the upper median of four values is the
    /// second largest, max(min(max(a, b), max(c, d)), max(min(a, b), min(c, d))), over four shifted views of the padded image.
    /// </summary>
    internal static Tensor UpperMedianOf2x2(Tensor images)
    {
        using var scope = NewDisposeScope();
        var (height, width) = (images.shape[2], images.shape[3]);
        // Reflect padding by one in front (scipy 'reflect' mirrors the edge pixel itself): the first row and column repeated.
        var padded = cat([images.narrow(2, 0, 1), images], 2);
        padded = cat([padded.narrow(3, 0, 1), padded], 3);
        var upLeft = padded.narrow(2, 0, height).narrow(3, 0, width);
        var up = padded.narrow(2, 0, height).narrow(3, 1, width);
        var left = padded.narrow(2, 1, height).narrow(3, 0, width);
        var here = padded.narrow(2, 1, height).narrow(3, 1, width);
        var secondLargest = maximum(minimum(maximum(upLeft, up), maximum(left, here)), maximum(minimum(upLeft, up), minimum(left, here)));
        return secondLargest.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The general window: every neighbourhood unfolded and sorted (scipy's rank window²/2).</summary>
    internal static Tensor MedianBySorting(Tensor images, int window)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var (height, width) = (images.shape[2], images.shape[3]);
        var before = window / 2;
        var after = window - 1 - before;
        var padded = Reflect(Reflect(images, 2, before, after), 3, before, after);
        var patches = nn.functional.unfold(padded, window); // (N, C*window*window, H*W)
        var channels = images.shape[1];
        var median = patches.reshape(images.shape[0], channels, window * window, height * width).sort(2).Values.select(2, window * window / 2);
        return median.reshape(images.shape[0], channels, height, width).MoveToOuterDisposeScope();
    }

    /// <summary>scipy's 'reflect' padding along one dimension: the first <paramref name="before"/> values mirrored in front, the last <paramref name="after"/> behind.</summary>
    private static Tensor Reflect(Tensor images, int dimension, int before, int after)
    {
        var size = images.shape[dimension];
        var parts = new List<Tensor>();
        if (before > 0) parts.Add(images.narrow(dimension, 0, before).flip(dimension));
        parts.Add(images);
        if (after > 0) parts.Add(images.narrow(dimension, size - after, after).flip(dimension));
        return cat(parts, dimension);
    }
}
