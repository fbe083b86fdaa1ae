using SecureMnist.Evaluation;

namespace SecureMnist.Tests.Evaluation;

public sealed class RocTests
{
    [Fact]
    public void Auc_is_the_share_of_correctly_ordered_pairs_with_ties_counted_half()
    {
        Assert.Equal(1.0, Roc.Auc([0.9, 0.8], [0.1, 0.2]));
        Assert.Equal(0.0, Roc.Auc([0.1], [0.9, 0.8]));
        Assert.Equal(0.5, Roc.Auc([0.5, 0.5], [0.5]));
        // Pairs (p, n): (3,1) (3,2) (3,3: tie) (2,1) (2,2: tie) (2,3: wrong) -> (2 + 1 + 0.5 + 0.5) / 6 = 4 / 6.
        Assert.Equal(4.0 / 6, Roc.Auc([3, 2], [1, 2, 3]), 12);
    }

    [Fact]
    public void Auc_of_a_large_random_sample_is_near_its_known_value()
    {
        // Positives N(1, 1), negatives N(0, 1): AUC = Phi(1 / sqrt(2)) = 0.76025.
#pragma warning disable CA5394 // a statistical sample, not a secret
        var random = new Random(3);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var positives = Enumerable.Range(0, 20_000).Select(_ => 1 + Normal()).ToList();
        var negatives = Enumerable.Range(0, 20_000).Select(_ => Normal()).ToList();
#pragma warning restore CA5394
        Assert.Equal(0.76025, Roc.Auc(positives, negatives), 2);
    }

    [Fact]
    public void The_true_positive_rate_at_a_low_false_positive_rate_uses_only_thresholds_within_it()
    {
        double[] negatives = [.. Enumerable.Range(0, 1000).Select(i => i / 1000.0)]; // 0.000 .. 0.999
        double[] positives = [0.9995, 0.9985, 0.5, 0.4];
        // FPR <= 0.1%: thresholds above 0.998 flag one negative (0.999) at most: both top positives (>= 0.9985 flags 0.999 only).
        Assert.Equal(0.5, Roc.TruePositiveRateAt(positives, negatives, 0.001), 12);
        Assert.Equal(0.25, Roc.TruePositiveRateAt(positives, negatives, 0.0), 12);
        var curve = Roc.Curve(positives, negatives);
        Assert.Equal((0.0, 0.0), (curve[0].FalsePositiveRate, curve[0].TruePositiveRate));
        Assert.Equal((1.0, 1.0), (curve[^1].FalsePositiveRate, curve[^1].TruePositiveRate));
        Assert.True(curve.Zip(curve.Skip(1)).All(p => p.Second.FalsePositiveRate >= p.First.FalsePositiveRate && p.Second.TruePositiveRate >= p.First.TruePositiveRate));
    }

    [Fact]
    public void Empty_sets_and_nan_scores_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Roc.Auc([], [1.0]));
        Assert.Throws<ArgumentException>(() => Roc.Auc([double.NaN], [1.0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Roc.TruePositiveRateAt([1.0], [0.0], 1.5));
    }
}
