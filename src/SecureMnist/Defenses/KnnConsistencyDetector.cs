using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// k-NN label consistency, after Peri et al. 2020 ("Deep k-NN defense against clean-label data poisoning attacks"), in input space: every
/// training sample's <see cref="PoisonDetectionOptions.Neighbours"/> nearest other training images (squared L2 over the rows given) vote
/// with their labels, and a sample whose own label holds at most <see cref="PoisonDetectionOptions.MaxAgreement"/> of the votes is flagged.
/// A dirty-label poison is a source-class digit under the target's label: its nearest images are digits of the source class. The rule reads
/// no model, so a backdoor trained to hide in the activations does not hide here; it cannot see clean-label poison, whose label is right,
/// and it weakens when the poison is so dense that the poisoned images are each other's nearest neighbours.
/// </summary>
internal sealed class KnnConsistencyDetector(PoisonDetectionOptions options) : IPoisonDetector
{
    /// <summary>Query rows per distance block: a block holds [block, count] float32 distances (about 120 MB at 60,000 samples).</summary>
    private const int Block = 512;

    /// <summary>Per class, the members' scores (the share of neighbours with another label, higher meaning more suspect) and the flagged ones.</summary>
    public bool ReadsPixels => true;

    public IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        var agreement = Agreement(rows, labels, options.Neighbours, cancellationToken);
        var detections = new List<ClassDetection>();
        foreach (var label in labels.Distinct().Order())
        {
            var members = Enumerable.Range(0, labels.Count).Where(i => labels[i] == label).ToArray();
            var scores = members.Select(i => 1 - agreement[i]).ToArray();
            FlaggedSample[] flagged = [.. Enumerable.Range(0, members.Length)
                .Where(k => agreement[members[k]] <= options.MaxAgreement + 1e-9)
                .Select(k => new FlaggedSample(members[k], label, scores[k]))];
            var share = members.Length == 0 ? 0 : (double)flagged.Length / members.Length;
            detections.Add(new ClassDetection(new ClassAnalysis(label, members.Length, flagged.Length, share, 0, flagged.Length > 0), flagged, scores));
        }
        return detections;
    }

    /// <summary>For every row, the share of its <paramref name="neighbours"/> nearest other rows that carry its label.</summary>
    public static double[] Agreement(FeatureActivations rows, IReadOnlyList<byte> labels, int neighbours, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(labels);
        if (rows.Count != labels.Count) throw new ArgumentException($"{rows.Count} rows for {labels.Count} labels");
        if (rows.Count <= neighbours) throw new ArgumentException($"k-NN consistency with {neighbours} neighbours needs more than {neighbours} samples; it has {rows.Count}");
        var count = rows.Count;
        var agreement = new double[count];
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var x = tensor(rows.Values).reshape(count, rows.Dimensions);
        var squared = x.pow(2).sum(1);
        var labelTensor = tensor(labels.Select(l => (long)l).ToArray(), ScalarType.Int64);
        for (var start = 0; start < count; start += Block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var block = NewDisposeScope();
            var length = Math.Min(Block, count - start);
            var queries = x.narrow(0, start, length);
            var distances = squared.narrow(0, start, length).unsqueeze(1) - 2 * queries.matmul(x.t()) + squared.unsqueeze(0);
            // A sample is not its own neighbour (an exact duplicate elsewhere in the set still is).
            distances.scatter_(1, arange(start, start + length, ScalarType.Int64).unsqueeze(1), full(length, 1, float.PositiveInfinity));
            var (_, nearest) = distances.topk(neighbours, dim: 1, largest: false, sorted: false);
            var agreeing = labelTensor[nearest].eq(labelTensor.narrow(0, start, length).unsqueeze(1)).sum(1).to(ScalarType.Float64) / neighbours;
            agreeing.data<double>().CopyTo(agreement.AsSpan(start, length));
        }
        return agreement;
    }
}
