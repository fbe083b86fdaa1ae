using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Reporting;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

public enum PoisonDetectionMethod
{
    /// <summary>Chen et al. 2018, on robustly whitened activations: per class, 2-means along the top spectral direction; a small, far, tight cluster is poison.</summary>
    ActivationClustering,
    /// <summary>Tran et al. 2018, on robustly whitened activations (as in Hayase et al. 2021, SPECTRE): per class, the top 1.5 x the expected poison fraction by spectral score.</summary>
    SpectralSignatures,
}

/// <summary>
/// Options of the training-set poison detectors. Both start the same way, per class: the penultimate-layer activations
/// are whitened with a covariance estimated on all but the <see cref="Trim"/> most outlying share of the class (so a
/// poison population cannot hide in the estimate), and every sample is scored by its robust z-score along the top
/// principal direction of the whitened activations. The trim has to exceed the poisoned share of the class with room for its
/// natural outliers, or the poison shapes the estimate and no longer stands out. Activation clustering flags the smaller of two clusters on that
/// score when it holds at most <see cref="MaxClusterFraction"/> of its class and its separation (distance between the
/// cluster centres over the sum of their standard deviations) is at least <see cref="MinSeparation"/>. Spectral signatures
/// flag the top 1.5 x <see cref="ExpectedFraction"/> of every class, as in the paper.
/// </summary>
public sealed record PoisonDetectionOptions(
    PoisonDetectionMethod Method = PoisonDetectionMethod.ActivationClustering,
    double Trim = 0.2,
    double MaxClusterFraction = 0.15,
    double MinSeparation = 4,
    double ExpectedFraction = 0.05,
    int Seed = 1)
{
    public void Validate()
    {
        if (Trim is < 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(Trim), Trim, "the share trimmed from the covariance estimate must be in [0, 0.5)");
        if (MaxClusterFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(MaxClusterFraction), MaxClusterFraction, "the largest cluster fraction still called poison must be in (0, 0.5)");
        if (MinSeparation is <= 0 or > 1000) throw new ArgumentOutOfRangeException(nameof(MinSeparation), MinSeparation, "the separation must be positive");
        if (ExpectedFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(ExpectedFraction), ExpectedFraction, "the expected poison fraction must be in (0, 0.5)");
    }
}

/// <summary>
/// What the detector saw in one class (by the training label): the share in the smaller cluster, the clusters' separation,
/// and whether the class looks poisoned.
/// </summary>
public sealed record ClassAnalysis(int Label, int Samples, int Flagged, double SmallClusterFraction, double Separation, bool Suspicious);

/// <summary>A flagged training sample; <see cref="Score"/> is its robust z-score along the class's top whitened direction.</summary>
public sealed record FlaggedSample(int Index, int Label, double Score);

/// <summary>Detection scored against a poison manifest (the ground truth a real defender lacks).</summary>
public sealed record PoisonDetectionScore(
    int Poisoned, int Flagged, int TruePositives, double Precision, double Recall,
    int TargetClass, int CleanInTargetClass, int CleanFlaggedInTargetClass, double CleanFlaggedRateInTargetClass,
    int CleanFlaggedOverall, double CleanFlaggedRateOverall);

public sealed record PoisonDetectionReport(
    PoisonDetectionOptions Options, int Samples, IReadOnlyList<ClassAnalysis> Classes, IReadOnlyList<FlaggedSample> Flagged,
    double Seconds, PoisonDetectionScore? Score = null)
{
    public const string FileName = "detection.json";

    public PoisonDetectionReport ScoredAgainst(PoisonManifest manifest, IReadOnlyList<byte> labels)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(labels);
        var poisoned = manifest.Indices();
        var flagged = Flagged.Select(f => f.Index).ToHashSet();
        var truePositives = flagged.Count(poisoned.Contains);
        var target = manifest.TargetClass;
        var cleanTarget = Enumerable.Range(0, labels.Count).Count(i => labels[i] == target && !poisoned.Contains(i));
        var cleanFlaggedTarget = flagged.Count(i => labels[i] == target && !poisoned.Contains(i));
        var cleanFlagged = flagged.Count - truePositives;
        var clean = labels.Count - poisoned.Count;
        return this with
        {
            Score = new PoisonDetectionScore(poisoned.Count, flagged.Count, truePositives,
                flagged.Count == 0 ? 0 : (double)truePositives / flagged.Count,
                poisoned.Count == 0 ? 0 : (double)truePositives / poisoned.Count,
                target, cleanTarget, cleanFlaggedTarget, cleanTarget == 0 ? 0 : (double)cleanFlaggedTarget / cleanTarget,
                cleanFlagged, clean == 0 ? 0 : (double)cleanFlagged / clean),
        };
    }
}

/// <summary>Finds poisoned training samples from a trained model's penultimate-layer activations, without knowing the trigger.</summary>
public static class PoisonDetector
{
    public static PoisonDetectionReport Detect(Module<Tensor, Tensor> network, LabeledImages train, PoisonDetectionOptions options,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var features = FeatureActivations.Extract(network, train, progress: progress, cancellationToken: cancellationToken);
        var classes = new List<ClassAnalysis>();
        var flagged = new List<FlaggedSample>();
        foreach (var label in train.Labels.Distinct().Order())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var members = Enumerable.Range(0, train.Count).Where(i => train.Labels[i] == label).ToArray();
            var (analysis, classFlagged) = options.Method == PoisonDetectionMethod.ActivationClustering
                ? ClusterClass(features, members, label, options)
                : SpectralClass(features, members, label, options);
            classes.Add(analysis);
            flagged.AddRange(classFlagged);
        }
        flagged.Sort((a, b) => b.Score.CompareTo(a.Score));
        return new PoisonDetectionReport(options, train.Count, classes, flagged, stopwatch.Elapsed.TotalSeconds);
    }

    private static (ClassAnalysis, IEnumerable<FlaggedSample>) ClusterClass(FeatureActivations features, int[] members, int label, PoisonDetectionOptions options)
    {
        var scores = SpectralScores(features, members, options.Trim);
        var assignment = KMeans.TwoMeans(scores.Select(z => (float)z).ToArray(), members.Length, 1, options.Seed);
        var sizes = new int[2];
        foreach (var a in assignment) sizes[a]++;
        var small = sizes[0] <= sizes[1] ? 0 : 1;
        var fraction = (double)sizes[small] / members.Length;
        var separation = Separation(scores, assignment, small);
        var suspicious = sizes[small] > 0 && fraction <= options.MaxClusterFraction && separation >= options.MinSeparation;
        var flagged = suspicious
            ? Enumerable.Range(0, members.Length).Where(k => assignment[k] == small).Select(k => new FlaggedSample(members[k], label, Math.Abs(scores[k]))).ToArray()
            : [];
        return (new ClassAnalysis(label, members.Length, flagged.Length, fraction, separation, suspicious), flagged);
    }

    private static (ClassAnalysis, IEnumerable<FlaggedSample>) SpectralClass(FeatureActivations features, int[] members, int label, PoisonDetectionOptions options)
    {
        var scores = SpectralScores(features, members, options.Trim);
        var budget = (int)Math.Min(members.Length, Math.Ceiling(1.5 * options.ExpectedFraction * members.Length));
        var flagged = Enumerable.Range(0, members.Length)
            .Select(k => new FlaggedSample(members[k], label, Math.Abs(scores[k])))
            .OrderByDescending(f => f.Score).Take(budget).ToArray();
        return (new ClassAnalysis(label, members.Length, flagged.Length, (double)budget / members.Length, 0, budget > 0), flagged);
    }

    /// <summary>
    /// Per class, the separation of its two clusters on the whitening score, with the threshold a class must reach to be
    /// called poisoned; suspicious classes in red, with how many samples they flag (and, when scored, how many were poison).
    /// </summary>
    public static void Plot(PoisonDetectionReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var bars = report.Classes.Select(c => new Bar($"{c.Label}", c.Separation, c.Suspicious,
            c.Flagged == 0 ? null : report.Score is { } s && c.Label == s.TargetClass ? $"{c.Flagged} ({s.TruePositives} poison)" : $"{c.Flagged}")).ToList();
        var title = report.Score is { } score
            ? $"poison detection: {score.Flagged} flagged, recall {100 * score.Recall:F1}%, precision {100 * score.Precision:F1}%"
            : $"poison detection: {report.Flagged.Count} flagged of {report.Samples}";
        BarChart.Save(path, title, "class (training label); above a bar: samples flagged", "cluster separation (centre distance / summed std)", bars,
            report.Options.Method == PoisonDetectionMethod.ActivationClustering ? (report.Options.MinSeparation, $"threshold {report.Options.MinSeparation:0.##}") : null,
            highlightedLabel: "suspicious class");
    }

    /// <summary>Distance between the two clusters' centres over the sum of their standard deviations (0 when one is empty).</summary>
    private static double Separation(double[] scores, int[] assignment, int small)
    {
        var inSmall = scores.Where((_, k) => assignment[k] == small).ToArray();
        var inLarge = scores.Where((_, k) => assignment[k] != small).ToArray();
        if (inSmall.Length == 0 || inLarge.Length == 0) return 0;
        static double Deviation(double[] values, double mean) => Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        var (smallMean, largeMean) = (inSmall.Average(), inLarge.Average());
        return Math.Abs(smallMean - largeMean) / Math.Max(Deviation(inSmall, smallMean) + Deviation(inLarge, largeMean), 1e-12);
    }

    /// <summary>
    /// Robust z-scores of the members along the top principal direction of their whitened activations. The whitening
    /// covariance is re-estimated a few times without the <paramref name="trim"/> share of members farthest from the rest
    /// (Mahalanobis distance), so a small, shifted poison population stands out instead of inflating the estimate.
    /// </summary>
    private static double[] SpectralScores(FeatureActivations features, int[] members, double trim)
    {
        using var scope = NewDisposeScope();
        var rows = new float[checked(members.Length * features.Dimensions)];
        for (var k = 0; k < members.Length; k++) features.Row(members[k]).CopyTo(rows.AsSpan(k * features.Dimensions));
        var x = tensor(rows).reshape(members.Length, features.Dimensions).to(ScalarType.Float64);
        var kept = ones(members.Length, dtype: ScalarType.Bool);
        Tensor mean = x.mean([0]), whitening = eye(features.Dimensions, dtype: ScalarType.Float64);
        for (var iteration = 0; iteration < 4; iteration++)
        {
            var inliers = x[kept];
            mean = inliers.mean([0]);
            var centred = inliers - mean;
            var covariance = centred.t().matmul(centred) / Math.Max(1, inliers.shape[0] - 1);
            var (eigenvalues, eigenvectors) = linalg.eigh(covariance);
            // Dead ReLU units give zero variance: floor the spectrum so whitening does not divide by zero.
            var floor = Math.Max(eigenvalues.max().item<double>() * 1e-3, 1e-12);
            whitening = eigenvectors.matmul(diag(eigenvalues.clamp_min(floor).rsqrt())).matmul(eigenvectors.t());
            var distances = (x - mean).matmul(whitening).pow(2).sum(1);
            var cut = distances.sort().Values[(long)Math.Min(members.Length - 1, Math.Floor(members.Length * (1 - trim)))];
            kept = distances <= cut;
        }
        var whitened = (x - mean).matmul(whitening);
        var (_, _, vh) = linalg.svd(whitened, fullMatrices: false);
        var projection = whitened.matmul(vh[0]).data<double>().ToArray();
        var median = Median(projection);
        var spread = 1.4826 * Median(projection.Select(p => Math.Abs(p - median)).ToArray());
        return projection.Select(p => (p - median) / Math.Max(spread, 1e-12)).ToArray();
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
