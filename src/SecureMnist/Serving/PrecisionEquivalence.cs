using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Defenses;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Serving;

/// <summary>
/// One kind of input decided by the service's checks in float32 and in bfloat16: accuracy, the adversarial-input detector's
/// flag rate (feature squeezing alone), and the share the service does not answer plainly (refused as not a digit by the pixel
/// statistics, which do not depend on the precision, or flagged). <paramref name="AccuracyFp32"/> and <paramref name="AccuracyBf16"/>
/// are null for inputs without digit labels (Fashion-MNIST).
/// </summary>
public sealed record PrecisionComparison(string Inputs, int Count, double? AccuracyFp32, double? AccuracyBf16, double SqueezedFp32, double SqueezedBf16,
    double HeldBackFp32, double HeldBackBf16, double PredictionsAgree, double FlagsAgree, double NotADigit)
{
    /// <summary>The largest of the accuracy, detector-rate and held-back-rate gaps, as a share (0.001 is 0.1 point).</summary>
    public double LargestGap => new[] { AccuracyFp32 is { } a && AccuracyBf16 is { } b ? Math.Abs(a - b) : 0, Math.Abs(SqueezedFp32 - SqueezedBf16), Math.Abs(HeldBackFp32 - HeldBackBf16) }.Max();
}

/// <summary>
/// Whether serving in bfloat16 decides as float32 does: every row's accuracy and detector rate within <see cref="Tolerance"/>,
/// each precision's detector calibrated on its own outputs as the service calibrates it, and the speed of the serving forward
/// pass (the input and its two squeezed copies) in each.
/// </summary>
public sealed record PrecisionEquivalenceReport(double ThresholdFp32, double ThresholdBf16, double Tolerance, IReadOnlyList<PrecisionComparison> Rows,
    double ImagesPerSecondFp32, double ImagesPerSecondBf16, double Seconds)
{
    public bool Equivalent => Rows.All(r => r.LargestGap <= Tolerance + 1e-12);
}

/// <summary>The settings of a precision comparison. <paramref name="Tolerance"/> is a share: 0.001 is 0.1 point.</summary>
public sealed record PrecisionEquivalenceOptions(double Epsilon = 0.3, int CalibrationImages = 2000, double Tolerance = 0.001)
{
    public void Validate()
    {
        if (Epsilon is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "eps must be in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfLessThan(CalibrationImages, 1);
        if (Tolerance is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Tolerance), Tolerance, "the tolerance is a share in [0, 1)");
    }
}

public static class PrecisionEquivalence
{
    /// <summary>
    /// Decides the same inputs with <paramref name="fp32"/> and with <paramref name="bf16"/> (the same weights converted, as
    /// <c>serve --precision bf16</c> converts them): clean test digits, FGSM and PGD-40 examples crafted on the float32 model (so
    /// both see identical inputs), and Fashion-MNIST when given.
    /// </summary>
    public static PrecisionEquivalenceReport Run(Module<Tensor, Tensor> fp32, Module<Tensor, Tensor> bf16, LabeledImages train, LabeledImages test, LabeledImages? fashion,
        PrecisionEquivalenceOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fp32);
        ArgumentNullException.ThrowIfNull(bf16);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        RequireType(fp32, ScalarType.Float32, nameof(fp32));
        RequireType(bf16, ScalarType.BFloat16, nameof(bf16));
        var stopwatch = Stopwatch.StartNew();
        progress?.Report("calibrating the detector at each precision");
        var squeezing = new SqueezingOptions();
        var guardFp32 = InputGuard.Calibrate(fp32, train, options.CalibrationImages, squeezing);
        var guardBf16 = InputGuard.Calibrate(bf16, train, options.CalibrationImages, squeezing);
        using var scope = NewDisposeScope();
        using var classifierFp32 = new NetworkClassifier(fp32);
        using var classifierBf16 = new NetworkClassifier(bf16);
        var images = test.ImagesTensor();
        var labels = test.LabelsTensor();

        var sets = new List<(string Name, Tensor Inputs, int[]? Labels)> { ("clean MNIST test", images, test.Labels.Select(l => (int)l).ToArray()) };
        foreach (var (name, attack) in new (string, IEvasionAttack)[] { ("FGSM", new Fgsm(new FgsmOptions(options.Epsilon))), ("PGD-40", new Pgd(new PgdOptions(options.Epsilon, 0.01, 40, Seed: 1))) })
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report($"crafting {attack.Name} on the float32 model");
            sets.Add(($"{name} eps {options.Epsilon:G} (from fp32)", InputGuardEvaluation.Chunks(images, labels, 500, (x, y) => attack.Generate(classifierFp32, x, y)), sets[0].Labels));
        }
        if (fashion is not null) sets.Add(("Fashion-MNIST test", fashion.ImagesTensor(), null));

        var rows = new List<PrecisionComparison>();
        double secondsFp32 = 0, secondsBf16 = 0;
        long timedImages = 0;
        foreach (var (name, inputs, truth) in sets)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report($"deciding {name} at both precisions");
            var (predictedFp32, squeezedFp32, timeFp32) = Decide(classifierFp32, guardFp32.Squeezing, inputs);
            var (predictedBf16, squeezedBf16, timeBf16) = Decide(classifierBf16, guardBf16.Squeezing, inputs);
            var notADigit = NotADigit(guardFp32.Statistics, inputs);
            var flaggedFp32 = squeezedFp32.Select((f, i) => f || notADigit[i]).ToArray();
            var flaggedBf16 = squeezedBf16.Select((f, i) => f || notADigit[i]).ToArray();
            secondsFp32 += timeFp32;
            secondsBf16 += timeBf16;
            timedImages += predictedFp32.Length;
            var count = predictedFp32.Length;
            double Share(Func<int, bool> test) => count == 0 ? 0 : (double)Enumerable.Range(0, count).Count(test) / count;
            rows.Add(new PrecisionComparison(name, count,
                truth is null ? null : Share(i => predictedFp32[i] == truth[i]),
                truth is null ? null : Share(i => predictedBf16[i] == truth[i]),
                Share(i => squeezedFp32[i]), Share(i => squeezedBf16[i]), Share(i => flaggedFp32[i]), Share(i => flaggedBf16[i]),
                Share(i => predictedFp32[i] == predictedBf16[i]), Share(i => squeezedFp32[i] == squeezedBf16[i]), Share(i => notADigit[i])));
        }
        return new PrecisionEquivalenceReport(guardFp32.Squeezing.Threshold, guardBf16.Squeezing.Threshold, options.Tolerance, rows,
            timedImages / Math.Max(secondsFp32, 1e-9), timedImages / Math.Max(secondsBf16, 1e-9), stopwatch.Elapsed.TotalSeconds);
    }

    /// <summary>The service's forward pass on the inputs: predictions, detector flags and the seconds it took.</summary>
    private static (int[] Predictions, bool[] Flagged, double Seconds) Decide(NetworkClassifier classifier, FeatureSqueezing squeezing, Tensor inputs)
    {
        using var scope = NewDisposeScope();
        var watch = Stopwatch.StartNew();
        var (probabilities, scores) = squeezing.ProbabilitiesAndScores(classifier, inputs);
        var predictions = probabilities.argmax(1).to(ScalarType.Int32).data<int>().ToArray();
        watch.Stop();
        return (predictions, [.. scores.Select(s => s > squeezing.Threshold)], watch.Elapsed.TotalSeconds);
    }

    private static bool[] NotADigit(DigitStatistics statistics, Tensor inputs)
    {
        var pixels = inputs.reshape(inputs.shape[0], -1).data<float>().ToArray();
        return [.. Enumerable.Range(0, (int)inputs.shape[0]).Select(i => statistics.Check(pixels.AsSpan(i * DigitImage.Pixels, DigitImage.Pixels)) is not null)];
    }

    private static void RequireType(Module<Tensor, Tensor> network, ScalarType type, string name)
    {
        if (network.parameters().FirstOrDefault() is { } parameter && parameter.dtype != type)
            throw new ArgumentException($"the {name} network's weights are {parameter.dtype}, expected {type}", name);
    }
}
