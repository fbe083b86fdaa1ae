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
        using var scope = NewDisposeScope();
        var scores = Scores(model, Probabilities(model, cleanImages), cleanImages, options);
        return new FeatureSqueezing(options, ThresholdCalibration.AboveThreshold(scores, options.FalsePositiveRate, options.Confidence));
    }

    /// <summary>Scores of inputs whose softmax outputs <paramref name="probabilities"/> the caller already computed.</summary>
    public double[] Scores(IClassifier model, Tensor probabilities, Tensor images) => Scores(model, probabilities, images, Options);

    public double[] Scores(IClassifier model, Tensor images)
    {
        using var scope = NewDisposeScope();
        return Scores(model, Probabilities(model, images), images, Options);
    }

    private static Tensor Probabilities(IClassifier model, Tensor images) => model.Probabilities(images, 1000);

    /// <summary>
    /// Softmax outputs of the inputs and their squeezing scores from one forward pass over the inputs and both squeezed
    /// copies stacked together (the service's path: one larger batch is cheaper than three small ones).
    /// </summary>
    public (Tensor Probabilities, double[] Scores) ProbabilitiesAndScores(IClassifier model, Tensor images)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var count = images.shape[0];
        var all = model.Probabilities(cat([images, ReduceBitDepth(images, Options.BitDepth), MedianFilter(images, Options.MedianWindow)], 0), (int)(3 * count));
        var (plain, depth, median) = (all.narrow(0, 0, count), all.narrow(0, count, count), all.narrow(0, 2 * count, count));
        var score = maximum((plain - depth).abs().sum(1), (plain - median).abs().sum(1));
        return (plain.contiguous().MoveToOuterDisposeScope(), score.to(ScalarType.Float64).data<double>().ToArray());
    }

    private static double[] Scores(IClassifier model, Tensor probabilities, Tensor images, SqueezingOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var depth = Probabilities(model, ReduceBitDepth(images, options.BitDepth));
        var median = Probabilities(model, MedianFilter(images, options.MedianWindow));
        var score = maximum((probabilities - depth).abs().sum(1), (probabilities - median).abs().sum(1));
        return score.to(ScalarType.Float64).data<double>().ToArray();
    }

    /// <summary>Rounds values in [0, 1] to 2^bits levels.</summary>
    public static Tensor ReduceBitDepth(Tensor images, int bits)
    {
        ArgumentNullException.ThrowIfNull(images);
        var levels = (1 << bits) - 1;
        return (images * levels).round() / levels;
    }

    /// <summary>Median over a window x window neighbourhood (edges replicated; for even windows, the lower median, as torch.median).</summary>
    public static Tensor MedianFilter(Tensor images, int window)
    {
        ArgumentNullException.ThrowIfNull(images);
        var (height, width) = (images.shape[2], images.shape[3]);
        var before = (window - 1) / 2;
        var after = window - 1 - before;
        var padded = nn.functional.pad(images, [before, after, before, after], PaddingModes.Replicate);
        var patches = nn.functional.unfold(padded, window); // (N, C*window*window, H*W)
        var channels = images.shape[1];
        var median = patches.reshape(images.shape[0], channels, window * window, height * width).sort(2).Values.select(2, ((window * window) - 1) / 2);
        return median.reshape(images.shape[0], channels, height, width);
    }
}
