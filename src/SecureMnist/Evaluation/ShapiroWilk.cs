namespace SecureMnist.Evaluation;

/// <summary>
/// The Shapiro-Wilk W statistic of normality (Shapiro and Wilk 1965), with the coefficients of Royston's approximation
/// (algorithm AS R94, 1995), the one R's shapiro.test uses. W is near 1 for normal samples and falls as the sample departs
/// from normality.
/// </summary>
public static class ShapiroWilk
{
    public const int MinimumSize = 3;
    public const int MaximumSize = 5000;

    private static readonly double[] C1 = [0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
    private static readonly double[] C2 = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];

    /// <summary>W of the sample (3 to 5,000 values; not all equal).</summary>
    public static double W(ReadOnlySpan<double> sample)
    {
        var n = sample.Length;
        if (n is < MinimumSize or > MaximumSize) throw new ArgumentOutOfRangeException(nameof(sample), n, $"Shapiro-Wilk needs {MinimumSize} to {MaximumSize} values");
        var sorted = sample.ToArray();
        Array.Sort(sorted);
        if (sorted[^1] - sorted[0] <= 0) throw new ArgumentException("all values are equal: normality is undefined", nameof(sample));
        return W(sorted, Coefficients(n));
    }

    /// <summary>W of an ascending sample with the given coefficients (the upper half, largest first, as <see cref="Coefficients"/> gives them).</summary>
    internal static double W(double[] sorted, double[] half)
    {
        var n = sorted.Length;
        double mean = 0;
        foreach (var x in sorted) mean += x;
        mean /= n;
        double numerator = 0, squares = 0;
        for (var i = 0; i < half.Length; i++) numerator += half[i] * (sorted[n - 1 - i] - sorted[i]);
        foreach (var x in sorted) squares += (x - mean) * (x - mean);
        return Math.Min(1.0, numerator * numerator / squares);
    }

    /// <summary>The n/2 coefficients a_n, a_(n-1), ... of Royston's approximation, normalised so that 2 * sum(a^2) = 1.</summary>
    public static double[] Coefficients(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, MinimumSize);
        var half = n / 2;
        if (n == 3) return [Math.Sqrt(0.5)];
        var m = new double[half];
        double summ2 = 0;
        for (var i = 0; i < half; i++)
        {
            m[i] = -NormalQuantile((i + 1 - 0.375) / (n + 0.25)); // positive: the expected largest order statistics
            summ2 += m[i] * m[i];
        }
        summ2 *= 2;
        var ssumm2 = Math.Sqrt(summ2);
        var rsn = 1 / Math.Sqrt(n);
        var a = new double[half];
        var a1 = Polynomial(C1, rsn) + m[0] / ssumm2;
        int first;
        double factor;
        if (n > 5)
        {
            var a2 = m[1] / ssumm2 + Polynomial(C2, rsn);
            factor = Math.Sqrt((summ2 - 2 * m[0] * m[0] - 2 * m[1] * m[1]) / (1 - 2 * a1 * a1 - 2 * a2 * a2));
            a[1] = a2;
            first = 2;
        }
        else
        {
            factor = Math.Sqrt((summ2 - 2 * m[0] * m[0]) / (1 - 2 * a1 * a1));
            first = 1;
        }
        a[0] = a1;
        for (var i = first; i < half; i++) a[i] = m[i] / factor;
        return a;
    }

    private static double Polynomial(double[] c, double x)
    {
        double result = 0;
        for (var i = c.Length - 1; i >= 0; i--) result = result * x + c[i];
        return result;
    }

    /// <summary>The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).</summary>
    public static double NormalQuantile(double p)
    {
        if (p is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "a probability in (0, 1)");
        double[] a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        double[] b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01];
        double[] c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        double[] d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
        const double low = 0.02425;
        double x;
        if (p < low)
        {
            var q = Math.Sqrt(-2 * Math.Log(p));
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        else if (p <= 1 - low)
        {
            var q = p - 0.5;
            var r = q * q;
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
        }
        else
        {
            var q = Math.Sqrt(-2 * Math.Log(1 - p));
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        return x;
    }
}
