namespace SecureMnist.Defenses;

/// <summary>
/// Detector thresholds from clean calibration scores that keep the true false-positive rate at or below a target with
/// a stated confidence. A plain quantile of the calibration scores meets its target only about half the time.
/// </summary>
public static class ThresholdCalibration
{
    /// <summary>Threshold for a detector that flags scores strictly below it (low = suspicious).</summary>
    public static double BelowThreshold(IReadOnlyCollection<double> cleanScores, double rate, double confidence)
    {
        var sorted = Sorted(cleanScores, rate, confidence, out var rank);
        return sorted[rank - 1]; // rank - 1 calibration scores lie strictly below it
    }

    /// <summary>Threshold for a detector that flags scores strictly above it (high = suspicious).</summary>
    public static double AboveThreshold(IReadOnlyCollection<double> cleanScores, double rate, double confidence)
    {
        var sorted = Sorted(cleanScores, rate, confidence, out var rank);
        return sorted[^rank];
    }

    private static double[] Sorted(IReadOnlyCollection<double> scores, double rate, double confidence, out int rank)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (rate is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(rate), rate, "the false-positive rate must be in (0, 1)");
        if (confidence is < 0.5 or >= 1) throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "the confidence must be in [0.5, 1)");
        if (scores.Any(double.IsNaN)) throw new ArgumentException("calibration scores contain NaN", nameof(scores));
        rank = scores.Count == 0 ? 0 : ConservativeRank(scores.Count, rate, confidence) ?? 0;
        if (rank == 0)
            throw new ArgumentException($"{scores.Count} clean calibration inputs are too few to bound the false-positive rate by {rate:P1} with {confidence:P0} confidence; use more");
        var sorted = scores.ToArray();
        Array.Sort(sorted);
        return sorted;
    }

    /// <summary>
    /// The largest 1-based rank k such that the k-th smallest of n clean scores has a true false-positive rate at or
    /// below <paramref name="rate"/> with probability <paramref name="confidence"/>: F(X_(k)) is Beta(k, n-k+1), so
    /// P(F(X_(k)) &lt;= rate) = P(Binomial(n, rate) &gt;= k). Null when even k = 1 is not confident enough.
    /// </summary>
    public static int? ConservativeRank(int n, double rate, double confidence)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        // Walk k upwards while P(Bin >= k) = 1 - P(Bin <= k - 1) stays at or above the confidence.
        var logP = n * Math.Log(1 - rate); // log P(Bin = 0)
        var cumulative = 0.0; // P(Bin <= k - 1)
        int? best = null;
        for (var k = 1; k <= n; k++)
        {
            cumulative += Math.Exp(logP); // adds P(Bin = k - 1)
            if (1 - cumulative < confidence) break;
            best = k;
            logP += Math.Log((double)(n - k + 1) / k) + Math.Log(rate / (1 - rate)); // P(Bin = k) from P(Bin = k - 1)
        }
        return best;
    }
}
