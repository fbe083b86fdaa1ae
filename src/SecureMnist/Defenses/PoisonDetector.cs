using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

public enum PoisonDetectionMethod
{
    /// <summary>Chen et al. 2018: per class, 2-means on the top principal components; a small, well-separated cluster is poison.</summary>
    ActivationClustering,
    /// <summary>Tran et al. 2018: per class, the squared projection on the top singular vector; the highest scores are poison.</summary>
    SpectralSignatures,
}

/// <summary>
/// Options of the training-set poison detectors. Activation clustering flags the smaller of two clusters when it holds at
/// most <see cref="MaxClusterFraction"/> of its class and the split's silhouette is at least <see cref="MinSilhouette"/>.
/// Spectral signatures flag the top 1.5 x <see cref="ExpectedFraction"/> of every class, as in the paper.
/// </summary>
public sealed record PoisonDetectionOptions(
    PoisonDetectionMethod Method = PoisonDetectionMethod.ActivationClustering,
    int Components = 10,
    double MaxClusterFraction = 0.15,
    double MinSilhouette = 0.35,
    double ExpectedFraction = 0.05,
    int Seed = 1)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Components);
        if (MaxClusterFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(MaxClusterFraction), MaxClusterFraction, "the largest cluster fraction still called poison must be in (0, 0.5)");
        if (MinSilhouette is < -1 or > 1) throw new ArgumentOutOfRangeException(nameof(MinSilhouette), MinSilhouette, "silhouette must be in [-1, 1]");
        if (ExpectedFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(ExpectedFraction), ExpectedFraction, "the expected poison fraction must be in (0, 0.5)");
    }
}

/// <summary>What the detector saw in one class (by the training label).</summary>
public sealed record ClassAnalysis(int Label, int Samples, int Flagged, double SmallClusterFraction, double Silhouette, bool Suspicious);

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
        var points = Project(features, members, options.Components, out _);
        var dimensions = points.Length / members.Length;
        var assignment = KMeans.TwoMeans(points, members.Length, dimensions, options.Seed);
        var sizes = new int[2];
        foreach (var a in assignment) sizes[a]++;
        var small = sizes[0] <= sizes[1] ? 0 : 1;
        var silhouettes = KMeans.Silhouettes(points, members.Length, dimensions, assignment);
        var silhouette = silhouettes.Length == 0 ? 0 : silhouettes.Average();
        var fraction = (double)sizes[small] / members.Length;
        var suspicious = sizes[small] > 0 && fraction <= options.MaxClusterFraction && silhouette >= options.MinSilhouette;
        var flagged = suspicious
            ? Enumerable.Range(0, members.Length).Where(k => assignment[k] == small).Select(k => new FlaggedSample(members[k], label, silhouettes[k])).ToArray()
            : [];
        return (new ClassAnalysis(label, members.Length, flagged.Length, fraction, silhouette, suspicious), flagged);
    }

    private static (ClassAnalysis, IEnumerable<FlaggedSample>) SpectralClass(FeatureActivations features, int[] members, int label, PoisonDetectionOptions options)
    {
        var projection = Project(features, members, 1, out _);
        var budget = (int)Math.Min(members.Length, Math.Ceiling(1.5 * options.ExpectedFraction * members.Length));
        var flagged = Enumerable.Range(0, members.Length)
            .Select(k => new FlaggedSample(members[k], label, projection[k] * (double)projection[k]))
            .OrderByDescending(f => f.Score).Take(budget).ToArray();
        return (new ClassAnalysis(label, members.Length, flagged.Length, (double)budget / members.Length, 0, budget > 0), flagged);
    }

    /// <summary>The members' centred activations projected on their top principal directions, row-major [members, components].</summary>
    private static float[] Project(FeatureActivations features, int[] members, int components, out int used)
    {
        using var scope = NewDisposeScope();
        var rows = new float[checked(members.Length * features.Dimensions)];
        for (var k = 0; k < members.Length; k++) features.Row(members[k]).CopyTo(rows.AsSpan(k * features.Dimensions));
        var matrix = tensor(rows).reshape(members.Length, features.Dimensions).to(ScalarType.Float64);
        var centred = matrix - matrix.mean([0], keepdim: true);
        var (_, _, vh) = linalg.svd(centred, fullMatrices: false);
        used = (int)Math.Min(components, vh.shape[0]);
        var projected = centred.matmul(vh.narrow(0, 0, used).t()).to(ScalarType.Float32).contiguous();
        return projected.data<float>().ToArray();
    }
}
