using SecureMnist.Data;
using SecureMnist.Evaluation;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Privacy;

/// <summary>What a model gives away about each labelled image: its cross-entropy loss and LiRA's logit-scaled confidence.</summary>
public sealed record MembershipSignals(double[] Loss, double[] Confidence, bool[] Correct)
{
    /// <summary>
    /// Loss and confidence phi = log(p_y / (1 - p_y)) = z_y - logsumexp(z_j, j != y), computed from the logits so it stays finite at
    /// confidences that round to 1 in floating point (Carlini et al. 2022, section IV-A).
    /// </summary>
    public static MembershipSignals Of(Module<Tensor, Tensor> network, LabeledImages images, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(images);
        var loss = new double[images.Count];
        var confidence = new double[images.Count];
        var right = new bool[images.Count];
        network.eval();
        using var noGrad = no_grad();
        using var all = images.ImagesTensor();
        using var labels = images.LabelsTensor();
        for (var start = 0; start < images.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var length = Math.Min(batchSize, images.Count - start);
            var logits = network.call(all.narrow(0, start, length)).to_type(ScalarType.Float64);
            var y = labels.narrow(0, start, length);
            var lossRow = functional.cross_entropy(logits, y, reduction: Reduction.None).data<double>().ToArray();
            var correct = logits.gather(1, y.unsqueeze(1)).squeeze(1);
            var others = logits.scatter(1, y.unsqueeze(1), tensor(double.NegativeInfinity, ScalarType.Float64).expand(length, 1));
            var phi = (correct - others.logsumexp(1)).data<double>().ToArray();
            logits.argmax(1).eq(y).data<bool>().ToArray().CopyTo(right, start);
            lossRow.CopyTo(loss, start);
            phi.CopyTo(confidence, start);
        }
        return new MembershipSignals(loss, confidence, right);
    }
}

/// <summary>
/// The likelihood-ratio attack (LiRA, Carlini et al. 2022). Shadow models trained with the target's recipe, each on a random half
/// of the evaluation images, show how an image's confidence is distributed when the image was in training (IN) and when it was
/// not (OUT). Online, an image's score is the log-likelihood ratio of the target's confidence under the two Gaussians; offline
/// (OUT shadows only), it is how far the target's confidence sits above the OUT Gaussian. With few shadows the variance is
/// shared across images ("fixed variance"), which the paper found stronger below 64 shadows.
/// </summary>
public static class Lira
{
    /// <summary>
    /// Which shadows train on which evaluation image: every image is IN for exactly half of the <paramref name="shadows"/> (chosen
    /// at random), so each has both IN and OUT shadows and each shadow sees about half the images.
    /// </summary>
    public static bool[][] Assign(int shadows, int images, int seed)
    {
        if (shadows < 2 || shadows % 2 != 0) throw new ArgumentOutOfRangeException(nameof(shadows), shadows, "LiRA needs an even number of shadow models, at least 2 (8 or more to be informative)");
        ArgumentOutOfRangeException.ThrowIfLessThan(images, 1);
        var random = new SeededRandom(seed);
        var isIn = Enumerable.Range(0, shadows).Select(_ => new bool[images]).ToArray();
        var order = Enumerable.Range(0, shadows).ToArray();
        for (var i = 0; i < images; i++)
        {
            random.Shuffle(order);
            for (var k = 0; k < shadows / 2; k++) isIn[order[k]][i] = true;
        }
        return isIn;
    }

    /// <summary>Membership scores (higher: more likely a member) for the target's confidences, from the shadows' confidences on the same images.</summary>
    public static double[] Scores(IReadOnlyList<double> target, IReadOnlyList<double[]> shadows, IReadOnlyList<bool[]> isIn, bool online, bool fixedVariance)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(shadows);
        ArgumentNullException.ThrowIfNull(isIn);
        if (shadows.Count == 0 || shadows.Count != isIn.Count) throw new ArgumentException("every shadow model needs its confidences and its IN/OUT assignment");
        if (shadows.Any(s => s.Length != target.Count) || isIn.Any(m => m.Length != target.Count)) throw new ArgumentException("the shadows' confidences must cover the target's images");
        var n = target.Count;
        var (inMean, inDeviation) = Gaussians(shadows, isIn, wantIn: true, fixedVariance);
        var (outMean, outDeviation) = Gaussians(shadows, isIn, wantIn: false, fixedVariance);
        var scores = new double[n];
        for (var i = 0; i < n; i++)
        {
            if (online)
            {
                if (double.IsNaN(inMean[i]) || double.IsNaN(outMean[i])) throw new ArgumentException($"image {i} has no IN or no OUT shadow; online LiRA needs both (see Assign)");
                scores[i] = LogNormal(target[i], inMean[i], inDeviation[i]) - LogNormal(target[i], outMean[i], outDeviation[i]);
            }
            else
            {
                if (double.IsNaN(outMean[i])) throw new ArgumentException($"image {i} has no OUT shadow; offline LiRA needs one");
                scores[i] = (target[i] - outMean[i]) / outDeviation[i];
            }
        }
        return scores;
    }

    private static (double[] Mean, double[] Deviation) Gaussians(IReadOnlyList<double[]> shadows, IReadOnlyList<bool[]> isIn, bool wantIn, bool fixedVariance)
    {
        var n = shadows[0].Length;
        var mean = new double[n];
        var deviation = new double[n];
        double pooledSquares = 0;
        long pooledCount = 0;
        for (var i = 0; i < n; i++)
        {
            double sum = 0;
            var count = 0;
            for (var k = 0; k < shadows.Count; k++)
                if (isIn[k][i] == wantIn) { sum += shadows[k][i]; count++; }
            mean[i] = count == 0 ? double.NaN : sum / count;
            double squares = 0;
            for (var k = 0; k < shadows.Count; k++)
                if (isIn[k][i] == wantIn) squares += (shadows[k][i] - mean[i]) * (shadows[k][i] - mean[i]);
            deviation[i] = count > 1 ? Math.Sqrt(squares / (count - 1)) : double.NaN;
            pooledSquares += squares;
            pooledCount += Math.Max(0, count - 1);
        }
        var pooled = pooledCount > 0 ? Math.Sqrt(pooledSquares / pooledCount) : 1.0;
        for (var i = 0; i < n; i++)
            deviation[i] = Math.Max(fixedVariance || double.IsNaN(deviation[i]) ? pooled : deviation[i], 1e-6);
        return (mean, deviation);
    }

    private static double LogNormal(double x, double mean, double deviation) =>
        -0.5 * ((x - mean) / deviation) * ((x - mean) / deviation) - Math.Log(deviation);
}

/// <summary>A point of a ROC curve sampled at a chosen false-positive rate: the best true-positive rate at or below it.</summary>
public readonly record struct RocSample(double FalsePositiveRate, double TruePositiveRate);

/// <summary>One attack's success on a balanced set: ROC AUC, the true-positive rate at 0.1% and 1% false positives, and the ROC curve sampled on a log grid.</summary>
public sealed record MembershipAttackResult(string Attack, double Auc, double TprAtFpr0001, double TprAtFpr001, double BalancedAccuracy, IReadOnlyList<RocSample> Curve)
{
    /// <summary>Scores of members (positives) and non-members (negatives) summarised.</summary>
    public static MembershipAttackResult Of(string attack, IReadOnlyList<double> memberScores, IReadOnlyList<double> nonMemberScores)
    {
        var curve = Roc.Curve(memberScores, nonMemberScores);
        double TprAt(double fpr) => curve.Where(p => p.FalsePositiveRate <= fpr).Max(p => p.TruePositiveRate);
        var grid = Enumerable.Range(0, 41).Select(i => Math.Pow(10, -4 + i / 10.0)).ToArray();
        var sampled = grid.Select(f => new RocSample(f, TprAt(f))).ToList();
        var accuracy = curve.Max(p => (p.TruePositiveRate + 1 - p.FalsePositiveRate) / 2);
        return new MembershipAttackResult(attack, Roc.Auc(memberScores, nonMemberScores), TprAt(0.001), TprAt(0.01), accuracy, sampled);
    }
}

/// <summary>
/// The most any attack can achieve against an (epsilon, delta)-DP model: at false-positive rate f, a true-positive rate of at most
/// min(1, e^epsilon f + delta) (Kairouz et al. 2015's hypothesis-testing view of DP).
/// </summary>
public sealed record PrivacyBound(double Epsilon, double Delta)
{
    public double MaxTruePositiveRate(double falsePositiveRate) => Math.Min(1, (Math.Exp(Epsilon) * falsePositiveRate) + Delta);

    /// <summary>Whether the attack's measured TPR at 0.1% and 1% FPR sit within the bound.</summary>
    public bool Holds(MembershipAttackResult attack)
    {
        ArgumentNullException.ThrowIfNull(attack);
        return attack.TprAtFpr0001 <= MaxTruePositiveRate(0.001) && attack.TprAtFpr001 <= MaxTruePositiveRate(0.01);
    }
}
