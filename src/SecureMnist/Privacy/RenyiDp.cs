namespace SecureMnist.Privacy;

/// <summary>
/// Rényi differential privacy of the sampled Gaussian mechanism (Mironov 2017; Mironov, Talwar and Zhang 2019, section 3.3):
/// each step adds N(0, sigma^2 C^2) noise to the sum of clipped per-example gradients of a Poisson sample with rate q.
/// The RDP of one step at order alpha is log(A_alpha) / (alpha - 1), computed in log space: as a finite binomial sum for an
/// integer alpha, and as two converging series of erfc-weighted terms for a fractional one. RDP composes by addition, and
/// <see cref="Epsilon"/> converts it to (epsilon, delta)-DP with the conversion of Balle et al. 2020 (Theorem 21), as Opacus
/// and TensorFlow Privacy do.
/// </summary>
public static class RenyiDp
{
    /// <summary>
    /// The RDP of <paramref name="steps"/> steps at each order: q the sampling rate, sigma the noise multiplier (noise standard
    /// deviation over the clipping norm). Orders must be above 1 (infinity is allowed and gives infinity unless q is 0).
    /// </summary>
    public static double[] SampledGaussian(double q, double sigma, long steps, IReadOnlyList<double> orders)
    {
        if (!(q is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "the sampling rate must be in [0, 1]");
        if (!(sigma >= 0) || double.IsInfinity(sigma)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "the noise multiplier must be finite and not negative");
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        ArgumentNullException.ThrowIfNull(orders);
        var rdp = new double[orders.Count];
        for (var i = 0; i < rdp.Length; i++)
        {
            var order = orders[i];
            if (!(order > 1)) throw new ArgumentOutOfRangeException(nameof(orders), order, "RDP orders must be above 1");
            var one = OneStep(q, sigma, order);
            rdp[i] = one == 0 || steps == 0 ? 0 : one * steps;
        }
        return rdp;
    }

    private static double OneStep(double q, double sigma, double order)
    {
        if (q == 0) return 0;
        if (sigma == 0) return double.PositiveInfinity; // no noise, no privacy
        if (q == 1) return order / (2 * sigma * sigma);
        if (double.IsPositiveInfinity(order)) return double.PositiveInfinity;
        return LogA(q, sigma, order) / (order - 1);
    }

    /// <summary>
    /// log(A_alpha), where A_alpha = E_{z ~ N(0, sigma^2)}[((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha], for 0 &lt; q &lt; 1 and a finite alpha &gt; 1.
    /// </summary>
    public static double LogA(double q, double sigma, double order) =>
        order == Math.Floor(order) ? LogAIntegerOrder(q, sigma, (int)order) : LogAFractionalOrder(q, sigma, order);

    private static double LogAIntegerOrder(double q, double sigma, int order)
    {
        var logA = double.NegativeInfinity;
        var logBinomial = 0.0; // log C(order, i), updated term by term
        for (var i = 0; i <= order; i++)
        {
            if (i > 0) logBinomial += Math.Log(order - i + 1) - Math.Log(i);
            var term = logBinomial + (i * Math.Log(q)) + ((order - i) * Math.Log(1 - q)) + ((((double)i * i) - i) / (2 * sigma * sigma));
            logA = LogAdd(logA, term);
        }
        return logA;
    }

    private static double LogAFractionalOrder(double q, double sigma, double order)
    {
        // The integral split at z0, where the two Gaussians' mixture ratio crosses over; each part is a series over i whose
        // binomial coefficients C(alpha, i) change sign once i passes alpha. Stops when both new terms are below e^-30.
        double logA0 = double.NegativeInfinity, logA1 = double.NegativeInfinity;
        var z0 = (sigma * sigma * Math.Log((1 / q) - 1)) + 0.5;
        var logCoefficient = 0.0; // log |C(alpha, i)|
        var positive = true;      // the sign of C(alpha, i)
        for (var i = 0; ; i++)
        {
            if (i > 0)
            {
                var factor = order - i + 1;
                logCoefficient += Math.Log(Math.Abs(factor)) - Math.Log(i);
                if (factor < 0) positive = !positive;
            }
            var j = order - i;
            var logT0 = logCoefficient + (i * Math.Log(q)) + (j * Math.Log(1 - q));
            var logT1 = logCoefficient + (j * Math.Log(q)) + (i * Math.Log(1 - q));
            var logE0 = Math.Log(0.5) + LogErfc((i - z0) / (Math.Sqrt(2) * sigma));
            var logE1 = Math.Log(0.5) + LogErfc((z0 - j) / (Math.Sqrt(2) * sigma));
            var logS0 = logT0 + ((((double)i * i) - i) / (2 * sigma * sigma)) + logE0;
            var logS1 = logT1 + (((j * j) - j) / (2 * sigma * sigma)) + logE1;
            if (positive)
            {
                logA0 = LogAdd(logA0, logS0);
                logA1 = LogAdd(logA1, logS1);
            }
            else
            {
                logA0 = LogSubtract(logA0, logS0);
                logA1 = LogSubtract(logA1, logS1);
            }
            if (Math.Max(logS0, logS1) < -30) break;
        }
        return LogAdd(logA0, logA1);
    }

    /// <summary>
    /// The smallest epsilon over the orders at which the mechanism with these RDP values is (epsilon, delta)-DP, and that order:
    /// epsilon = rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha) (Balle et al. 2020, Theorem 21).
    /// </summary>
    public static (double Epsilon, double Order) Epsilon(IReadOnlyList<double> orders, IReadOnlyList<double> rdp, double delta)
    {
        ArgumentNullException.ThrowIfNull(orders);
        ArgumentNullException.ThrowIfNull(rdp);
        if (orders.Count != rdp.Count || orders.Count == 0) throw new ArgumentException($"need one RDP value per order (got {orders.Count} orders and {rdp.Count} values)", nameof(rdp));
        if (!(delta is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must be in (0, 1)");
        var best = (Epsilon: double.PositiveInfinity, Order: double.NaN);
        for (var i = 0; i < orders.Count; i++)
        {
            var order = orders[i];
            var epsilon = double.IsPositiveInfinity(order)
                ? rdp[i]
                : rdp[i] - ((Math.Log(delta) + Math.Log(order)) / (order - 1)) + Math.Log((order - 1) / order);
            if (!double.IsNaN(epsilon) && (epsilon < best.Epsilon || double.IsNaN(best.Order))) best = (epsilon, order);
        }
        return best;
    }

    /// <summary>log(e^x + e^y), without overflow.</summary>
    public static double LogAdd(double x, double y)
    {
        var (low, high) = x < y ? (x, y) : (y, x);
        return double.IsNegativeInfinity(low) ? high : LogOnePlus(Math.Exp(low - high)) + high;
    }

    /// <summary>log(e^x - e^y) for x &gt;= y.</summary>
    public static double LogSubtract(double x, double y)
    {
        if (x < y) throw new ArithmeticException($"log-space subtraction would be negative (log {x} - log {y})");
        if (double.IsNegativeInfinity(y)) return x;
        if (x == y) return double.NegativeInfinity;
        var difference = ExpMinusOne(x - y);
        return double.IsPositiveInfinity(difference) ? x : Math.Log(difference) + y;
    }

    // log(1 + x) and exp(x) - 1 to full precision for small x (Goldberg's and Kahan's corrections).
    private static double LogOnePlus(double x)
    {
        var u = 1 + x;
        return u == 1 ? x : Math.Log(u) * x / (u - 1);
    }

    private static double ExpMinusOne(double x)
    {
        var u = Math.Exp(x);
        if (u == 1) return x;
        if (u - 1 == -1 || double.IsPositiveInfinity(u)) return u - 1;
        return (u - 1) * x / Math.Log(u);
    }

    /// <summary>log(erfc(x)), accurate far into the tail where erfc itself underflows.</summary>
    public static double LogErfc(double x)
    {
        if (x >= 2)
        {
            // erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))), evaluated from the back.
            var t = x;
            for (var n = 200; n >= 1; n--) t = x + (n / 2.0 / t);
            return (-x * x) - (0.5 * Math.Log(Math.PI)) - Math.Log(t);
        }
        if (x <= -2) return Math.Log(2 - Math.Exp(LogErfc(-x)));
        return Math.Log(1 - Erf(x));
    }

    /// <summary>erf for |x| &lt; 2 by the series 2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (1 3 5 ... (2n+1)), whose terms are all of one sign.</summary>
    private static double Erf(double x)
    {
        var term = x;
        var sum = x;
        for (var n = 1; n < 200 && Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
        {
            term *= 2 * x * x / ((2 * n) + 1);
            sum += term;
        }
        return 2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x) * sum;
    }
}
