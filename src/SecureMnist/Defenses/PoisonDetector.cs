using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Reporting;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

public enum PoisonDetectionMethod
{
    /// <summary>
    /// Robust whitening in the manner of SPECTRE (Hayase et al. 2021): per class, the activations whitened with a covariance estimated
    /// without the most outlying share, scored along the top direction; a small, far, tight 2-means cluster on that score is poison.
    /// </summary>
    Spectre,
    /// <summary>Chen et al. 2018 with ART's settings: per class, PCA to 10 dimensions, 2-means, and a cluster holding under 35% of its class is poison (or also a silhouette of at least 0.1).</summary>
    ActivationClustering,
    /// <summary>Tran et al. 2018: per class, centred activations scored by their squared projection on the top singular vector; the top 1.5 x the expected poison count is removed.</summary>
    SpectralSignatures,
    /// <summary>
    /// Input-space k-NN label consistency (after Peri et al. 2020): a sample whose nearest training images (in pixels) mostly carry other
    /// labels is flagged. It reads the images, not the model's activations.
    /// </summary>
    KnnConsistency,
    /// <summary>
    /// k-NN label consistency against trusted reference images: a sample whose nearest clean reference images (not training images) all
    /// carry other labels is flagged, so dense poison cannot vouch for itself. It needs a reference set the attacker could not touch.
    /// </summary>
    KnnReference,
    /// <summary>
    /// Both k-NN votes: a sample is flagged when its nearest training images (knn-consistency's rule) or its nearest trusted reference images
    /// (knn-reference's rule) reject its label. It needs the reference set too. It finds more poison than either vote alone, and pays with
    /// both votes' false alarms.
    /// </summary>
    KnnUnion,
}

/// <summary>How activation clustering (Chen et al.) decides which of a class's two clusters is poison; ART's names.</summary>
public enum ClusterAnalysis
{
    /// <summary>A cluster with less than <see cref="PoisonDetectionOptions.SizeThreshold"/> of its class (ART's relative-size).</summary>
    RelativeSize,
    /// <summary>Relative size, and the class's silhouette score at least <see cref="PoisonDetectionOptions.SilhouetteThreshold"/> (ART's silhouette-scores).</summary>
    Silhouette,
}

/// <summary>
/// Options of the training-set poison detectors, which all read penultimate-layer activations class by class (by training label).
/// <list type="bullet">
/// <item><see cref="PoisonDetectionMethod.Spectre"/> whitens with a covariance estimated on all but the <see cref="Trim"/> most outlying
/// share of the class (so a poison population cannot hide in the estimate) and scores every sample by its robust z-score along the top
/// direction of the whitened activations. The trim has to exceed the poisoned share of the class with room for its natural outliers. It
/// flags the smaller of two clusters on that score when it holds at most <see cref="MaxClusterFraction"/> of its class and its separation
/// (distance between the cluster centres over the sum of their standard deviations) is at least <see cref="MinSeparation"/>.</item>
/// <item><see cref="PoisonDetectionMethod.ActivationClustering"/> reduces to <see cref="Dimensions"/> by PCA, runs 2-means, and flags a
/// cluster under <see cref="SizeThreshold"/> of its class (with <see cref="ClusterAnalysis.Silhouette"/>, only when the silhouette is at
/// least <see cref="SilhouetteThreshold"/>).</item>
/// <item><see cref="PoisonDetectionMethod.SpectralSignatures"/> removes the top 1.5 x <see cref="ExpectedFraction"/> of every class.</item>
/// <item><see cref="PoisonDetectionMethod.KnnConsistency"/> flags a sample when at most <see cref="MaxAgreement"/> of its
/// <see cref="Neighbours"/> nearest training images share its label, compared in <see cref="KnnSpace"/>; with <see cref="PeelRounds"/>,
/// flagged samples stop voting and the rule is applied again, so a dense poison population cannot vouch for itself. The default, at most
/// 3 of 50 neighbours, keeps the false alarms on a clean training set (ambiguous or mislabelled digits) under 1% of a class where 5 of 50
/// did not.</item>
/// <item><see cref="PoisonDetectionMethod.KnnReference"/> flags a sample when at most <see cref="ReferenceMaxAgreement"/> of its
/// <see cref="ReferenceNeighbours"/> nearest trusted reference images (in <see cref="KnnSpace"/>) share its label. The default, none of 10,
/// is the unanimous rule: every nearest clean image says the label is wrong.</item>
/// <item><see cref="PoisonDetectionMethod.KnnUnion"/> flags what either of the two k-NN rules flags, each with its own
/// settings.</item>
/// </list>
/// </summary>
public sealed record PoisonDetectionOptions(
    PoisonDetectionMethod Method = PoisonDetectionMethod.KnnConsistency,
    double Trim = 0.2,
    double MaxClusterFraction = 0.15,
    double MinSeparation = 4,
    double ExpectedFraction = 0.05,
    int Seed = 1,
    int Dimensions = 10,
    double SizeThreshold = 0.35,
    ClusterAnalysis Analysis = ClusterAnalysis.RelativeSize,
    double SilhouetteThreshold = 0.1,
    int Neighbours = 50,
    double MaxAgreement = 0.06,
    KnnSpace KnnSpace = KnnSpace.Pooled,
    int PeelRounds = 10,
    int ReferenceNeighbours = 10,
    double ReferenceMaxAgreement = 0)
{
    public void Validate()
    {
        if (Trim is < 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(Trim), Trim, "the share trimmed from the covariance estimate must be in [0, 0.5)");
        if (MaxClusterFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(MaxClusterFraction), MaxClusterFraction, "the largest cluster fraction still called poison must be in (0, 0.5)");
        if (MinSeparation is <= 0 or > 1000) throw new ArgumentOutOfRangeException(nameof(MinSeparation), MinSeparation, "the separation must be positive");
        if (ExpectedFraction is <= 0 or >= 0.5) throw new ArgumentOutOfRangeException(nameof(ExpectedFraction), ExpectedFraction, "the expected poison fraction must be in (0, 0.5)");
        if (Dimensions is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(Dimensions), Dimensions, "the PCA dimensions must be 1 to 1,024");
        if (SizeThreshold is <= 0 or > 0.5) throw new ArgumentOutOfRangeException(nameof(SizeThreshold), SizeThreshold, "the relative-size threshold must be in (0, 0.5]");
        if (SilhouetteThreshold is < -1 or > 1) throw new ArgumentOutOfRangeException(nameof(SilhouetteThreshold), SilhouetteThreshold, "a silhouette threshold is in [-1, 1]");
        if (Neighbours is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(Neighbours), Neighbours, "the neighbours that vote must be 1 to 1,000");
        if (MaxAgreement is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(MaxAgreement), MaxAgreement, "the largest share of neighbours agreeing with a flagged sample's label must be in [0, 1)");
        if (!Enum.IsDefined(KnnSpace)) throw new ArgumentOutOfRangeException(nameof(KnnSpace), KnnSpace, "the k-NN space is pixels or pooled");
        if (PeelRounds is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(PeelRounds), PeelRounds, "the peeling rounds must be 0 to 100");
        if (ReferenceNeighbours is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(ReferenceNeighbours), ReferenceNeighbours, "the reference neighbours that vote must be 1 to 1,000");
        if (ReferenceMaxAgreement is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(ReferenceMaxAgreement), ReferenceMaxAgreement, "the largest share of reference neighbours agreeing with a flagged sample's label must be in [0, 1)");
    }
}

/// <summary>Where k-NN consistency measures distances between training images.</summary>
public enum KnnSpace
{
    /// <summary>The 784 pixels.</summary>
    Pixels,
    /// <summary>
    /// The image averaged over 2x2 blocks (196 values): digit shape survives, while the high-frequency part of a trigger (a blended
    /// noise pattern, a checkerboard) is attenuated, so the trigger pulls poisoned images less towards each other.
    /// </summary>
    Pooled,
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
    double Seconds, PoisonDetectionScore? Score = null, ClassScores? ScoredClass = null)
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

/// <summary>
/// One detector's view of one class: its analysis, the samples it flags, and (for a method that ranks members by a score) every member's
/// score in the order of <see cref="ClassActivations.Members"/>, higher meaning more suspect.
/// </summary>
internal sealed record ClassDetection(ClassAnalysis Analysis, IReadOnlyList<FlaggedSample> Flagged, double[]? Scores = null);

/// <summary>
/// A detector over the whole training set: one row per sample (activations, or pixels when it <see cref="ReadsPixels"/>), and per class
/// (in label order) what it found. Every method is one of these; <see cref="PoisonDetector"/> only builds the report.
/// </summary>
internal interface IPoisonDetector
{
    /// <summary>Whether the rows are the training images themselves rather than a model's activations.</summary>
    bool ReadsPixels { get; }

    IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken);
}

/// <summary>A detector that looks at one class at a time, seeing only that class's rows.</summary>
internal interface IClassPoisonDetector
{
    ClassDetection Analyse(ClassActivations activations);
}

/// <summary>Runs a per-class detector over every class of the set, each on its own members' rows.</summary>
internal sealed class ClassByClass(IClassPoisonDetector detector) : IPoisonDetector
{
    public bool ReadsPixels => false;

    public IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        var detections = new List<ClassDetection>();
        foreach (var label in labels.Distinct().Order())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var members = Enumerable.Range(0, labels.Count).Where(i => labels[i] == label).ToArray();
            var values = new float[checked(members.Length * rows.Dimensions)];
            for (var k = 0; k < members.Length; k++) rows.Row(members[k]).CopyTo(values.AsSpan(k * rows.Dimensions));
            detections.Add(detector.Analyse(new ClassActivations(label, members, values, rows.Dimensions)));
        }
        return detections;
    }
}

/// <summary>Every member of one class (training indices) with the detector's score, higher meaning more suspect: what a ROC curve needs.</summary>
public sealed record ClassScores(int Label, IReadOnlyList<int> Members, IReadOnlyList<double> Scores);

/// <summary>The activations of one class's members, row-major [Members.Length, Dimensions], and their training-set indices.</summary>
internal sealed record ClassActivations(int Label, int[] Members, float[] Rows, int Dimensions)
{
    /// <summary>The rows as a float64 tensor [members, dimensions] (in the caller's dispose scope).</summary>
    public Tensor Matrix() => tensor(Rows).reshape(Members.Length, Dimensions).to(ScalarType.Float64);
}

/// <summary>Finds poisoned training samples from a trained model's penultimate-layer activations, without knowing the trigger.</summary>
public static class PoisonDetector
{
    /// <summary>
    /// Runs the detector on the training set: on <paramref name="network"/>'s activations, or on the images for a method that
    /// <see cref="ReadsPixels"/>. <paramref name="reference"/> is the trusted clean set a method that <see cref="NeedsReference"/> votes with.
    /// </summary>
    public static PoisonDetectionReport Detect(Module<Tensor, Tensor> network, LabeledImages train, PoisonDetectionOptions options,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default, LabeledImages? reference = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(train);
        options.Validate();
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var features = ReadsPixels(options.Method) ? FeatureActivations.Pixels(train)
            : FeatureActivations.Extract(network, train, progress: progress, cancellationToken: cancellationToken);
        var report = Detect(features, train.Labels, options, cancellationToken, reference: reference);
        return report with { Seconds = stopwatch.Elapsed.TotalSeconds };
    }

    /// <summary>
    /// Runs the detector on rows already extracted (one per training sample, in the order of <paramref name="labels"/>): activations, or the
    /// pixels for a method that <see cref="ReadsPixels"/>. With <paramref name="scoreClass"/>, a method that scores members (all but
    /// activation clustering) also returns that class's scores. <paramref name="reference"/> is the trusted clean set a method that
    /// <see cref="NeedsReference"/> votes with.
    /// </summary>
    public static PoisonDetectionReport Detect(FeatureActivations features, IReadOnlyList<byte> labels, PoisonDetectionOptions options,
        CancellationToken cancellationToken = default, int? scoreClass = null, LabeledImages? reference = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (features.Count != labels.Count) throw new ArgumentException($"{features.Count} activation rows for {labels.Count} labels");
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var detections = Create(options, reference).Analyse(features, labels, cancellationToken);
        FlaggedSample[] flagged = [.. detections.SelectMany(d => d.Flagged).OrderByDescending(f => f.Score)];
        var scored = detections.FirstOrDefault(d => d.Analysis.Label == scoreClass) is { Scores: { } scores } d
            ? new ClassScores(d.Analysis.Label, [.. Enumerable.Range(0, labels.Count).Where(i => labels[i] == d.Analysis.Label)], scores) : null;
        return new PoisonDetectionReport(options, labels.Count, [.. detections.Select(x => x.Analysis)], flagged, stopwatch.Elapsed.TotalSeconds, ScoredClass: scored);
    }

    private static IPoisonDetector Create(PoisonDetectionOptions options, LabeledImages? reference) => options.Method switch
    {
        PoisonDetectionMethod.Spectre => new ClassByClass(new SpectreDetector(options)),
        PoisonDetectionMethod.ActivationClustering => new ClassByClass(new ActivationClusteringDetector(options)),
        PoisonDetectionMethod.SpectralSignatures => new ClassByClass(new SpectralSignaturesDetector(options)),
        PoisonDetectionMethod.KnnConsistency => new KnnConsistencyDetector(options),
        PoisonDetectionMethod.KnnReference => new KnnReferenceDetector(options, reference ?? throw NoReference(options.Method)),
        PoisonDetectionMethod.KnnUnion => new KnnUnionDetector(options, reference ?? throw NoReference(options.Method)),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Method, "unknown detection method"),
    };

    private static ArgumentException NoReference(PoisonDetectionMethod method) =>
        new($"{MethodName(method)} needs trusted reference images (clean images the attacker could not touch, such as the dataset's own test images)");

    /// <summary>
    /// Per class, the figure the method decides on, with its threshold: the clusters' separation (spectre), the smaller cluster's share
    /// (activation clustering) or the share removed (spectral signatures); suspicious classes in red, with how many samples they flag (and,
    /// when scored, how many were poison).
    /// </summary>
    public static void Plot(PoisonDetectionReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var options = report.Options;
        var (value, yLabel, threshold) = options.Method switch
        {
            PoisonDetectionMethod.Spectre => ((Func<ClassAnalysis, double>)(c => c.Separation), "cluster separation (centre distance / summed std)",
                ((double, string)?)(options.MinSeparation, $"threshold {options.MinSeparation:0.##}")),
            PoisonDetectionMethod.ActivationClustering => (c => 100 * c.SmallClusterFraction, "smaller cluster, % of the class", (100 * options.SizeThreshold, $"relative size {options.SizeThreshold:0.##}")),
            PoisonDetectionMethod.KnnConsistency => (c => 100 * c.SmallClusterFraction, $"flagged: at most {options.MaxAgreement:0.##} of {options.Neighbours} neighbours agree, % of the class", null),
            PoisonDetectionMethod.KnnReference => (c => 100 * c.SmallClusterFraction,
                $"flagged: at most {options.ReferenceMaxAgreement:0.##} of {options.ReferenceNeighbours} reference neighbours agree, % of the class", null),
            PoisonDetectionMethod.KnnUnion => (c => 100 * c.SmallClusterFraction,
                $"flagged: at most {options.MaxAgreement:0.##} of {options.Neighbours} training or {options.ReferenceMaxAgreement:0.##} of {options.ReferenceNeighbours} reference neighbours agree, % of the class", null),
            _ => (c => 100 * c.SmallClusterFraction, "removed, % of the class", null),
        };
        var bars = report.Classes.Select(c => new Bar($"{c.Label}", value(c), c.Suspicious,
            c.Flagged == 0 ? null : report.Score is { } s && c.Label == s.TargetClass ? $"{c.Flagged} ({s.TruePositives} poison)" : $"{c.Flagged}")).ToList();
        var name = MethodName(options.Method);
        var title = report.Score is { } score
            ? $"{name}: {score.Flagged} flagged, recall {100 * score.Recall:F1}%, precision {100 * score.Precision:F1}%"
            : $"{name}: {report.Flagged.Count} flagged of {report.Samples}";
        BarChart.Save(path, title, "class (training label); above a bar: samples flagged", yLabel, bars, threshold, highlightedLabel: "suspicious class");
    }

    /// <summary>The method's name on the command line.</summary>
    public static string MethodName(PoisonDetectionMethod method) => method switch
    {
        PoisonDetectionMethod.Spectre => "spectre",
        PoisonDetectionMethod.ActivationClustering => "activation-clustering",
        PoisonDetectionMethod.KnnConsistency => "knn-consistency",
        PoisonDetectionMethod.KnnReference => "knn-reference",
        PoisonDetectionMethod.KnnUnion => "knn-union",
        _ => "spectral-signatures",
    };

    /// <summary>Whether the method reads the training images themselves rather than a model's activations.</summary>
    public static bool ReadsPixels(PoisonDetectionMethod method) => method is PoisonDetectionMethod.KnnConsistency or PoisonDetectionMethod.KnnReference or PoisonDetectionMethod.KnnUnion;

    /// <summary>Whether the method votes with trusted reference images, which <see cref="Detect(FeatureActivations, IReadOnlyList{byte}, PoisonDetectionOptions, CancellationToken, int?, LabeledImages?)"/> then needs.</summary>
    public static bool NeedsReference(PoisonDetectionMethod method) => method is PoisonDetectionMethod.KnnReference or PoisonDetectionMethod.KnnUnion;

    internal static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
