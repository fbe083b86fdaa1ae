namespace SecureMnist.Evaluation;

/// <summary>A two-sided confidence interval for a proportion.</summary>
public readonly record struct Interval(double Low, double High);

/// <summary>Confidence intervals for an accuracy measured on n independent test images.</summary>
public static class BinomialInterval
{
    /// <summary>z for a two-sided 95% interval.</summary>
    public const double Z95 = 1.959963984540054;

    /// <summary>
    /// The Wilson score interval (Wilson 1927): unlike the normal approximation it stays inside [0, 1] and keeps its coverage near 0%
    /// and 100%, where robust accuracies of broken and of strong models sit.
    /// </summary>
    public static Interval Wilson(long successes, long trials, double z = Z95)
    {
        if (trials <= 0) throw new ArgumentOutOfRangeException(nameof(trials), trials, "an interval needs at least one trial");
        if (successes < 0 || successes > trials) throw new ArgumentOutOfRangeException(nameof(successes), successes, $"successes must be in [0, {trials}]");
        if (!(z > 0) || double.IsInfinity(z)) throw new ArgumentOutOfRangeException(nameof(z), z, "z must be a finite number > 0");
        var n = (double)trials;
        var p = successes / n;
        var z2 = z * z;
        var centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        var half = z / (1 + z2 / n) * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n));
        // At 0 and n successes the bound is exactly 0 or 1; rounding would otherwise leave it a hair inside, excluding the measured value.
        return new Interval(successes == 0 ? 0 : Math.Max(0, centre - half), successes == trials ? 1 : Math.Min(1, centre + half));
    }
}
