namespace SecureMnist.Evaluation;

/// <summary>One point of a ROC curve: at scores of at least <see cref="Threshold"/>, the share of positives and of negatives flagged.</summary>
public readonly record struct RocPoint(double Threshold, double FalsePositiveRate, double TruePositiveRate);

/// <summary>
/// Receiver operating characteristic of a score that should be higher for positives (an attack's member, an adversarial input)
/// than for negatives: the area under the curve, the true-positive rate at a fixed low false-positive rate (the figure that
/// matters for membership inference, Carlini et al. 2022), and the curve itself. Ties count half, as in the Mann-Whitney U.
/// </summary>
public static class Roc
{
    /// <summary>P(score of a random positive &gt; score of a random negative) + P(tie) / 2.</summary>
    public static double Auc(IReadOnlyList<double> positives, IReadOnlyList<double> negatives)
    {
        Check(positives, negatives);
        // Rank all scores together (average ranks for ties); U = sum of positive ranks - n+(n+ + 1)/2.
        var all = positives.Select(s => (Score: s, Positive: true)).Concat(negatives.Select(s => (Score: s, Positive: false))).OrderBy(p => p.Score).ToArray();
        double positiveRanks = 0;
        for (var i = 0; i < all.Length;)
        {
            var j = i;
            while (j < all.Length && all[j].Score == all[i].Score) j++;
            var averageRank = (i + 1 + j) / 2.0; // ranks i+1 .. j
            for (var k = i; k < j; k++) if (all[k].Positive) positiveRanks += averageRank;
            i = j;
        }
        double n1 = positives.Count, n0 = negatives.Count;
        return (positiveRanks - n1 * (n1 + 1) / 2) / (n1 * n0);
    }

    /// <summary>The curve from (0, 0) to (1, 1), one point per distinct score, thresholds descending.</summary>
    public static IReadOnlyList<RocPoint> Curve(IReadOnlyList<double> positives, IReadOnlyList<double> negatives)
    {
        Check(positives, negatives);
        var scores = positives.Concat(negatives).Distinct().OrderDescending().ToArray();
        var sortedPositives = positives.Order().ToArray();
        var sortedNegatives = negatives.Order().ToArray();
        var points = new List<RocPoint>(scores.Length + 1) { new(double.PositiveInfinity, 0, 0) };
        foreach (var threshold in scores)
            points.Add(new(threshold, AtLeast(sortedNegatives, threshold), AtLeast(sortedPositives, threshold)));
        return points;
    }

    /// <summary>The highest true-positive rate at a threshold whose false-positive rate is at most <paramref name="falsePositiveRate"/>.</summary>
    public static double TruePositiveRateAt(IReadOnlyList<double> positives, IReadOnlyList<double> negatives, double falsePositiveRate)
    {
        if (!(falsePositiveRate >= 0 && falsePositiveRate <= 1)) throw new ArgumentOutOfRangeException(nameof(falsePositiveRate), falsePositiveRate, "the false-positive rate must be in [0, 1]");
        return Curve(positives, negatives).Where(p => p.FalsePositiveRate <= falsePositiveRate).Max(p => p.TruePositiveRate);
    }

    // The share of sorted values >= threshold, by binary search.
    private static double AtLeast(double[] sorted, double threshold)
    {
        int low = 0, high = sorted.Length;
        while (low < high)
        {
            var middle = (low + high) / 2;
            if (sorted[middle] < threshold) low = middle + 1;
            else high = middle;
        }
        return (double)(sorted.Length - low) / sorted.Length;
    }

    private static void Check(IReadOnlyList<double> positives, IReadOnlyList<double> negatives)
    {
        ArgumentNullException.ThrowIfNull(positives);
        ArgumentNullException.ThrowIfNull(negatives);
        if (positives.Count == 0 || negatives.Count == 0) throw new ArgumentException("a ROC curve needs at least one positive and one negative score");
        if (positives.Concat(negatives).Any(double.IsNaN)) throw new ArgumentException("scores must not be NaN");
    }
}
