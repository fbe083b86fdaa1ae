using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// k-NN label consistency, after Peri et al. 2020 ("Deep k-NN defense against clean-label data poisoning attacks"), in input space: every
/// training sample's <see cref="PoisonDetectionOptions.Neighbours"/> nearest other training images (squared L2, in
/// <see cref="PoisonDetectionOptions.KnnSpace"/>) vote with their labels, and a sample whose own label holds at most
/// <see cref="PoisonDetectionOptions.MaxAgreement"/> of the votes is flagged. A dirty-label poison is a source-class digit under the
/// target's label: its nearest images are digits of the source class. The rule reads no model, so a backdoor trained to hide in the
/// activations does not hide here; it cannot see clean-label poison, whose label is right.
/// <para>
/// Dense poison vouches for itself: when poisoned images (one trigger, one label) are each other's nearest neighbours, they agree with each
/// other. Two things counter it. Distances are taken on 2x2-pooled images by default, which keeps the digit's shape and attenuates a
/// trigger's high-frequency pattern. And the rule peels: flagged samples stop voting, the rest vote again with their next nearest
/// neighbours in place of the flagged ones, up to <see cref="PoisonDetectionOptions.PeelRounds"/> times or until nothing changes.
/// </para>
/// </summary>
internal sealed class KnnConsistencyDetector(PoisonDetectionOptions options) : IPoisonDetector
{
    /// <summary>Query rows per distance block: a block holds [block, count] float32 distances (about 120 MB at 60,000 samples).</summary>
    private const int Block = 512;

    /// <summary>Nearest neighbours kept per sample when peeling, as a multiple of the voters: room to replace the flagged ones.</summary>
    private const int PeelReserve = 3;

    public bool ReadsPixels => true;

    /// <summary>Per class, the members' scores (the share of neighbours with another label, higher meaning more suspect) and the flagged ones.</summary>
    public IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        var agreement = AgreementOf(rows, labels, cancellationToken);
        return ByClass(labels, [.. agreement.Select(a => 1 - a)], [.. agreement.Select(a => Flags(a, options.MaxAgreement))]);
    }

    /// <summary>Every row's share of agreeing training neighbours under the options (space, neighbours, peeling).</summary>
    public double[] AgreementOf(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var space = options.KnnSpace == KnnSpace.Pooled ? Pooled(rows) : rows;
        return PeeledAgreement(space, labels, options.Neighbours, options.MaxAgreement, options.PeelRounds, cancellationToken);
    }

    /// <summary>Whether a sample with this share of agreeing neighbours is flagged: at most <paramref name="maxAgreement"/> agree.</summary>
    public static bool Flags(double agreement, double maxAgreement) => agreement <= maxAgreement + 1e-9;

    /// <summary>
    /// A k-NN rule's per-sample suspicion <paramref name="scores"/> and <paramref name="flags"/> (training order) as one detection per class,
    /// in label order, each with its members' scores.
    /// </summary>
    public static IReadOnlyList<ClassDetection> ByClass(IReadOnlyList<byte> labels, double[] scores, bool[] flags)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (scores.Length != labels.Count || flags.Length != labels.Count) throw new ArgumentException($"{scores.Length} scores and {flags.Length} flags for {labels.Count} labels");
        var detections = new List<ClassDetection>();
        foreach (var label in labels.Distinct().Order())
        {
            var members = Enumerable.Range(0, labels.Count).Where(i => labels[i] == label).ToArray();
            FlaggedSample[] flagged = [.. members.Where(i => flags[i]).Select(i => new FlaggedSample(i, label, scores[i]))];
            var share = members.Length == 0 ? 0 : (double)flagged.Length / members.Length;
            detections.Add(new ClassDetection(new ClassAnalysis(label, members.Length, flagged.Length, share, 0, flagged.Length > 0), flagged,
                [.. members.Select(i => scores[i])]));
        }
        return detections;
    }

    /// <summary>Square images averaged over 2x2 blocks (a 28x28 image becomes 14x14).</summary>
    public static FeatureActivations Pooled(FeatureActivations images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var side = (int)Math.Round(Math.Sqrt(images.Dimensions));
        if (side * side != images.Dimensions || side % 2 != 0)
            throw new ArgumentException($"pooled k-NN needs square images of even side; these rows have {images.Dimensions} values (use the pixels space)");
        var half = side / 2;
        var pooled = new float[images.Count * half * half];
        for (var n = 0; n < images.Count; n++)
        {
            var image = images.Row(n);
            var target = pooled.AsSpan(n * half * half, half * half);
            for (var r = 0; r < half; r++)
                for (var c = 0; c < half; c++)
                {
                    var at = 2 * r * side + 2 * c;
                    target[r * half + c] = (image[at] + image[at + 1] + image[at + side] + image[at + side + 1]) / 4;
                }
        }
        return new FeatureActivations(pooled, images.Count, half * half);
    }

    /// <summary>
    /// For every row, the share of its <paramref name="neighbours"/> nearest voting rows that carry its label. Rows flagged (agreement at
    /// most <paramref name="maxAgreement"/>) stop voting and the shares are taken again, up to <paramref name="peelRounds"/> times or
    /// until the flags stop changing; with 0 rounds every row votes once.
    /// </summary>
    public static double[] PeeledAgreement(FeatureActivations rows, IReadOnlyList<byte> labels, int neighbours, double maxAgreement, int peelRounds,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegative(peelRounds);
        var candidates = peelRounds == 0 ? neighbours : Math.Min(rows.Count - 1, PeelReserve * neighbours);
        var nearest = Nearest(rows, labels, Math.Max(neighbours, candidates), cancellationToken);
        var excluded = new bool[rows.Count];
        for (var round = 0; ; round++)
        {
            var agreement = Vote(nearest, labels, neighbours, excluded);
            var flags = agreement.Select(a => Flags(a, maxAgreement)).ToArray();
            if (round == peelRounds || flags.AsSpan().SequenceEqual(excluded)) return agreement;
            excluded = flags;
        }
    }

    /// <summary>For every row, the share of its <paramref name="neighbours"/> nearest other rows that carry its label.</summary>
    public static double[] Agreement(FeatureActivations rows, IReadOnlyList<byte> labels, int neighbours, CancellationToken cancellationToken = default) =>
        PeeledAgreement(rows, labels, neighbours, maxAgreement: 0, peelRounds: 0, cancellationToken);

    /// <summary>The share of each row's first <paramref name="neighbours"/> voting neighbours (nearest first) that carry its label; 0 when none votes.</summary>
    private static double[] Vote(NearestRows nearest, IReadOnlyList<byte> labels, int neighbours, bool[] excluded)
    {
        var agreement = new double[nearest.Count];
        for (var i = 0; i < nearest.Count; i++)
        {
            int voters = 0, agreeing = 0;
            foreach (var j in nearest.Of(i))
            {
                if (excluded[j]) continue;
                if (labels[(int)j] == labels[i]) agreeing++;
                if (++voters == neighbours) break;
            }
            agreement[i] = voters == 0 ? 0 : (double)agreeing / voters;
        }
        return agreement;
    }

    /// <summary>Each row's <paramref name="count"/> nearest other rows, nearest first (an exact duplicate elsewhere in the set counts).</summary>
    private static NearestRows Nearest(FeatureActivations rows, IReadOnlyList<byte> labels, int count, CancellationToken cancellationToken)
    {
        if (rows.Count != labels.Count) throw new ArgumentException($"{rows.Count} rows for {labels.Count} labels");
        if (rows.Count <= count) throw new ArgumentException($"k-NN consistency with {count} neighbours needs more than {count} samples; it has {rows.Count}");
        var total = rows.Count;
        var nearest = new long[checked(total * count)];
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var x = tensor(rows.Values).reshape(total, rows.Dimensions);
        var squared = x.pow(2).sum(1);
        for (var start = 0; start < total; start += Block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var block = NewDisposeScope();
            var length = Math.Min(Block, total - start);
            var queries = x.narrow(0, start, length);
            var distances = squared.narrow(0, start, length).unsqueeze(1) - 2 * queries.matmul(x.t()) + squared.unsqueeze(0);
            // A sample is not its own neighbour.
            distances.scatter_(1, arange(start, start + length, ScalarType.Int64).unsqueeze(1), full(length, 1, float.PositiveInfinity));
            var (_, indices) = distances.topk(count, dim: 1, largest: false, sorted: true);
            indices.contiguous().data<long>().CopyTo(nearest.AsSpan(start * count));
        }
        return new NearestRows(nearest, count);
    }

    /// <summary>Every row's nearest rows in one flat array, <paramref name="PerRow"/> a row, nearest first.</summary>
    private readonly record struct NearestRows(long[] Indices, int PerRow)
    {
        public int Count => Indices.Length / PerRow;

        public ReadOnlySpan<long> Of(int row) => Indices.AsSpan(row * PerRow, PerRow);
    }
}
