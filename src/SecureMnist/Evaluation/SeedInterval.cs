namespace SecureMnist.Evaluation;

/// <summary>A figure measured on several independently trained models: how many, their mean and standard deviation, and the 95% interval of the mean.</summary>
public sealed record SeedSpread(int Runs, double Mean, double StandardDeviation, Interval Interval95);

/// <summary>
/// The uncertainty that comes from training rather than from the test set: the same recipe trained with different seeds gives
/// different models. The interval of the mean uses Student's t with n - 1 degrees of freedom, which is wide for 3 runs, as it should be.
/// </summary>
public static class SeedInterval
{
    // Two-sided 95% quantiles t(0.975, df) for df = 1..30 (any statistics table, e.g. NIST/SEMATECH e-Handbook, table 1.4.2.7.4.2).
    private static readonly double[] T975 =
    [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];

    /// <summary>t(0.975, df): tabulated up to 30 degrees of freedom, then the Cornish-Fisher expansion around the normal quantile.</summary>
    public static double StudentT975(int degreesOfFreedom)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(degreesOfFreedom);
        if (degreesOfFreedom <= T975.Length) return T975[degreesOfFreedom - 1];
        const double z = BinomialInterval.Z95;
        double df = degreesOfFreedom, z3 = z * z * z, z5 = z3 * z * z;
        return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df * df);
    }

    /// <summary>Mean, sample standard deviation and the t interval of the mean of accuracies (fractions), kept inside [0, 1].</summary>
    public static SeedSpread Of(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count < 2) throw new ArgumentException($"an interval over training seeds needs at least 2 runs, got {values.Count}", nameof(values));
        if (values.Any(v => !(v >= 0 && v <= 1))) throw new ArgumentOutOfRangeException(nameof(values), "accuracies must be fractions in [0, 1]");
        var mean = values.Average();
        var deviation = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        var half = StudentT975(values.Count - 1) * deviation / Math.Sqrt(values.Count);
        return new SeedSpread(values.Count, mean, deviation, new Interval(Math.Max(0, mean - half), Math.Min(1, mean + half)));
    }
}
