using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Reporting;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

/// <summary>STRIP measured on a test set: the threshold, and its rates on clean and on triggered inputs it was not calibrated on.</summary>
public sealed record StripReport(
    StripOptions Options, int OverlayPool, int CalibrationImages, double Threshold,
    int CleanImages, int CleanFlagged, double FalsePositiveRate,
    int TriggeredImages, int TriggeredFlagged, double TruePositiveRate,
    IReadOnlyList<double> CleanEntropies, IReadOnlyList<double> TriggeredEntropies, double Seconds);

public static class StripEvaluation
{
    /// <summary>
    /// Splits the test set at random (seeded by the options): <paramref name="poolSize"/> images are overlays,
    /// <paramref name="calibrationSize"/> calibrate the threshold, and the rest are scored clean and, where their class is
    /// not the target (or, with <paramref name="attacked"/>, is one of those classes), triggered. A random split keeps calibration and
    /// evaluation images from the same distribution.
    /// </summary>
    public static StripReport Run(Module<Tensor, Tensor> network, LabeledImages test, BackdoorTrigger trigger, int targetClass, StripOptions options,
        int poolSize = 1000, int calibrationSize = 2000, IReadOnlyCollection<int>? attacked = null)
    {
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(trigger);
        if (test.Count < poolSize + calibrationSize + 100)
            throw new ArgumentException($"STRIP evaluation needs more than {poolSize + calibrationSize + 100} test images; got {test.Count}");
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        using var classifier = new NetworkClassifier(network, freezeParameters: false);
        using var scope = NewDisposeScope();
        var order = Enumerable.Range(0, test.Count).ToArray();
        new SeededRandom(options.Seed).Shuffle(order.AsSpan());
        var images = test.ImagesTensor();
        Tensor Rows(IEnumerable<int> indices) => images.index_select(0, tensor(indices.Select(i => (long)i).ToArray()));
        using var detector = StripDetector.Calibrate(classifier, Rows(order.Take(poolSize)), Rows(order.Skip(poolSize).Take(calibrationSize)), options);
        var heldOut = order.Skip(poolSize + calibrationSize).ToArray();
        var clean = Rows(heldOut);
        var others = heldOut.Where(i => test.Labels[i] != targetClass && (attacked is null || attacked.Contains(test.Labels[i]))).Select(i => (long)i).ToArray();
        var triggered = trigger.Apply(images.index_select(0, tensor(others)));
        var cleanEntropies = detector.Entropies(classifier, clean);
        var triggeredEntropies = detector.Entropies(classifier, triggered);
        var cleanFlagged = cleanEntropies.Count(e => e < detector.Threshold);
        var triggeredFlagged = triggeredEntropies.Count(e => e < detector.Threshold);
        return new StripReport(options, poolSize, calibrationSize, detector.Threshold,
            cleanEntropies.Length, cleanFlagged, (double)cleanFlagged / cleanEntropies.Length,
            triggeredEntropies.Length, triggeredFlagged, triggeredEntropies.Length == 0 ? 0 : (double)triggeredFlagged / triggeredEntropies.Length,
            cleanEntropies, triggeredEntropies, stopwatch.Elapsed.TotalSeconds);
    }

    /// <summary>Histogram of both entropy distributions with the threshold, as a PNG.</summary>
    public static void Plot(StripReport report, string path, int bins = 40)
    {
        ArgumentNullException.ThrowIfNull(report);
        var all = report.CleanEntropies.Concat(report.TriggeredEntropies).ToArray();
        var max = Math.Max(all.Max(), report.Threshold) * 1.02 + 1e-9;
        Series Histogram(string name, IReadOnlyList<double> values)
        {
            var counts = new int[bins];
            foreach (var v in values) counts[Math.Min(bins - 1, (int)(v / max * bins))]++;
            return new Series(name, counts.Select((c, b) => ((b + 0.5) * max / bins, values.Count == 0 ? 0 : (double)c / values.Count)).ToArray());
        }
        var threshold = new Series($"threshold {report.Threshold:F3}", [(report.Threshold, 0), (report.Threshold, 1)]);
        LineChart.Save(path, $"STRIP ({(report.Options.Blend == StripBlend.Add ? "add and clip" : $"alpha blend {report.Options.BlendAlpha:0.##}")}): TPR {100 * report.TruePositiveRate:F1}% at FPR {100 * report.FalsePositiveRate:F1}%",
            "mean entropy over blends (nats)", "share of inputs",
            [Histogram($"clean ({report.CleanImages})", report.CleanEntropies), Histogram($"triggered ({report.TriggeredImages})", report.TriggeredEntropies), threshold],
            yMin: 0);
    }
}
