using SecureMnist.Data;

namespace SecureMnist.Defenses;

/// <summary>
/// k-NN label consistency with two electorates: a sample is flagged when its nearest training images reject its label
/// (<see cref="KnnConsistencyDetector"/>: at most <see cref="PoisonDetectionOptions.MaxAgreement"/> of <see cref="PoisonDetectionOptions.Neighbours"/>,
/// peeled) or its nearest trusted reference images do (<see cref="KnnReferenceDetector"/>: at most
/// <see cref="PoisonDetectionOptions.ReferenceMaxAgreement"/> of <see cref="PoisonDetectionOptions.ReferenceNeighbours"/>).
/// <para>
/// Each vote covers the other's blind spot. The training vote has the larger electorate (every training image), so it resolves digits that
/// only a dense neighbourhood tells apart, but poison that is dense enough (one source class, one trigger, one label: TaCT) vouches for
/// itself there. The reference vote cannot be swayed by poison at all, but its electorate is the smaller trusted set. A sample's score is
/// the larger of its two suspicions (the share of neighbours carrying another label). The price of the union is the false alarms of both:
/// a clean digit either electorate finds ambiguous is flagged. Like both, it reads no model and cannot see clean-label poison.
/// </para>
/// </summary>
internal sealed class KnnUnionDetector(PoisonDetectionOptions options, LabeledImages reference) : IPoisonDetector
{
    private readonly KnnConsistencyDetector training = new(options);
    private readonly KnnReferenceDetector trusted = new(options, reference);

    public bool ReadsPixels => true;

    public IReadOnlyList<ClassDetection> Analyse(FeatureActivations rows, IReadOnlyList<byte> labels, CancellationToken cancellationToken)
    {
        // The reference vote first: it checks the reference covers every class before the longer training-set vote runs.
        var byReference = trusted.AgreementOf(rows, labels, cancellationToken);
        var byTraining = training.AgreementOf(rows, labels, cancellationToken);
        var scores = new double[labels.Count];
        var flags = new bool[labels.Count];
        for (var i = 0; i < labels.Count; i++)
        {
            scores[i] = Math.Max(1 - byTraining[i], 1 - byReference[i]);
            flags[i] = KnnConsistencyDetector.Flags(byTraining[i], options.MaxAgreement) || KnnConsistencyDetector.Flags(byReference[i], options.ReferenceMaxAgreement);
        }
        return KnnConsistencyDetector.ByClass(labels, scores, flags);
    }
}
