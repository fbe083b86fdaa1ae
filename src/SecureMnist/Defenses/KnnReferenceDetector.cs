using SecureMnist.Data;
using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// k-NN label consistency against a trusted reference set: every training sample's <see cref="PoisonDetectionOptions.ReferenceNeighbours"/>
/// nearest <em>reference</em> images (clean images the attacker could not touch, such as a curated held-out set) vote with their labels,
/// and a sample whose label holds at most <see cref="PoisonDetectionOptions.ReferenceMaxAgreement"/> of the votes is flagged.
/// <para>
/// Training-set k-NN (<see cref="KnnConsistencyDetector"/>) lets poison vote on poison: when many poisoned images share one source class,
/// one trigger and one label (TaCT, or any attack at a high rate), they are each other's nearest neighbours and vouch for each other.
/// Here no training image votes, so poison cannot vouch for itself however dense it is: a triggered source digit relabelled to the target
/// still has reference digits of its source class as its nearest neighbours. The price is the trusted set, and that a clean sample whose
/// digit is ambiguous (its nearest clean images all carry another label) is flagged too, as with any label-consistency rule. Like
/// <see cref="KnnConsistencyDetector"/> it reads no model, and it cannot see clean-label poison, whose label is right.
/// </para>
/// </summary>
internal sealed class KnnReferenceDetector : IPoisonDetector
{
    /// <summary>Training rows per distance block: a block holds [block, reference count] float32 distances.</summary>
    private const int Block = 1024;

    private readonly PoisonDetectionOptions options;
    private readonly FeatureActivations reference;
    private readonly IReadOnlyList<byte> referenceLabels;

    /// <summary>The detector with its trusted reference images; every class the training labels use must have enough of them.</summary>
    public KnnReferenceDetector(PoisonDetectionOptions options, LabeledImages reference)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(reference);
        this.options = options;
        this.reference = FeatureActivations.Pixels(reference);
        referenceLabels = reference.Labels;
    }

    public bool ReadsPixels => true;

    public IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        var agreement = AgreementOf(rows, labels, cancellationToken);
        return KnnConsistencyDetector.ByClass(labels, [.. agreement.Select(a => 1 - a)],
            [.. agreement.Select(a => KnnConsistencyDetector.Flags(a, options.ReferenceMaxAgreement))]);
    }

    /// <summary>
    /// Every row's share of agreeing reference neighbours under the options (space, reference neighbours); refused when the reference lacks
    /// enough images of a class the training labels use.
    /// </summary>
    public double[] AgreementOf(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(labels);
        if (rows.Count != labels.Count) throw new ArgumentException($"{rows.Count} rows for {labels.Count} labels");
        if (rows.Dimensions != reference.Dimensions)
            throw new ArgumentException($"the reference images have {reference.Dimensions} pixels and the training images {rows.Dimensions}: they must be the same size");
        var perClass = referenceLabels.CountBy(l => l).ToDictionary(p => p.Key, p => p.Value);
        foreach (var label in labels.Distinct().Order())
        {
            var have = perClass.GetValueOrDefault(label);
            if (have < options.ReferenceNeighbours)
                throw new ArgumentException($"the reference set has {have} images of class {label}; k-NN against it needs at least --neighbours ({options.ReferenceNeighbours}) of every class the training set uses, or every sample of that class would be flagged");
        }
        var pooled = options.KnnSpace == KnnSpace.Pooled;
        return Agreement(pooled ? KnnConsistencyDetector.Pooled(rows) : rows, labels,
            pooled ? KnnConsistencyDetector.Pooled(reference) : reference, referenceLabels, options.ReferenceNeighbours, cancellationToken);
    }

    /// <summary>For every row, the share of its <paramref name="neighbours"/> nearest reference rows (squared L2) that carry its label.</summary>
    public static double[] Agreement(FeatureActivations rows, IReadOnlyList<byte> labels, FeatureActivations reference, IReadOnlyList<byte> referenceLabels,
        int neighbours, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(reference);
        if (reference.Count < neighbours) throw new ArgumentException($"k-NN with {neighbours} neighbours needs at least {neighbours} reference images; there are {reference.Count}");
        var agreement = new double[rows.Count];
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var keys = tensor(reference.Values).reshape(reference.Count, reference.Dimensions);
        var keyNorms = keys.pow(2).sum(1);
        var queries = tensor(rows.Values).reshape(rows.Count, rows.Dimensions);
        for (var start = 0; start < rows.Count; start += Block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var block = NewDisposeScope();
            var length = Math.Min(Block, rows.Count - start);
            var query = queries.narrow(0, start, length);
            var distances = query.pow(2).sum(1).unsqueeze(1) - 2 * query.matmul(keys.t()) + keyNorms.unsqueeze(0);
            var nearest = distances.topk(neighbours, dim: 1, largest: false, sorted: true).indexes.contiguous().data<long>().ToArray();
            for (var r = 0; r < length; r++)
            {
                var agreeing = 0;
                for (var j = 0; j < neighbours; j++)
                    if (referenceLabels[(int)nearest[r * neighbours + j]] == labels[start + r]) agreeing++;
                agreement[start + r] = (double)agreeing / neighbours;
            }
        }
        return agreement;
    }
}
