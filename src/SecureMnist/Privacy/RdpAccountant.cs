namespace SecureMnist.Privacy;

/// <summary>
/// The privacy spent by DP-SGD so far: the steps taken, each with its noise multiplier and Poisson sampling rate, composed
/// in Rényi DP (<see cref="RenyiDp"/>) and converted to (epsilon, delta) at the best of <see cref="DefaultOrders"/>.
/// </summary>
public sealed class RdpAccountant
{
    /// <summary>The orders searched for the tightest conversion: 1.1 to 10.9 in steps of 0.1, then 12 to 63 (as Opacus searches).</summary>
    public static IReadOnlyList<double> DefaultOrders { get; } = [.. Enumerable.Range(1, 99).Select(x => 1 + (x / 10.0)), .. Enumerable.Range(12, 52).Select(o => (double)o)];

    private readonly List<(double NoiseMultiplier, double SampleRate, long Steps)> history = [];

    /// <summary>Steps accounted for so far.</summary>
    public long Steps => history.Sum(h => h.Steps);

    /// <summary>Accounts for <paramref name="steps"/> steps with this noise multiplier and sampling rate.</summary>
    public void Step(double noiseMultiplier, double sampleRate, long steps = 1)
    {
        if (!(noiseMultiplier >= 0) || double.IsInfinity(noiseMultiplier)) throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "the noise multiplier must be finite and not negative");
        if (!(sampleRate is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "the sampling rate must be in [0, 1]");
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        if (history.Count > 0 && history[^1].NoiseMultiplier == noiseMultiplier && history[^1].SampleRate == sampleRate)
            history[^1] = (noiseMultiplier, sampleRate, history[^1].Steps + steps);
        else history.Add((noiseMultiplier, sampleRate, steps));
    }

    /// <summary>The epsilon spent at this delta, with the order that gives it; (0, 0) before the first step.</summary>
    public (double Epsilon, double Order) Epsilon(double delta, IReadOnlyList<double>? orders = null)
    {
        if (!(delta is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must be in (0, 1)");
        if (history.Count == 0) return (0, 0);
        orders ??= DefaultOrders;
        var rdp = new double[orders.Count];
        foreach (var (sigma, q, steps) in history)
        {
            var part = RenyiDp.SampledGaussian(q, sigma, steps, orders);
            for (var i = 0; i < rdp.Length; i++) rdp[i] += part[i];
        }
        return RenyiDp.Epsilon(orders, rdp, delta);
    }

    /// <summary>
    /// The noise multiplier that spends at most <paramref name="targetEpsilon"/> (and within <paramref name="tolerance"/> of it)
    /// over <paramref name="steps"/> steps at this sampling rate: the upper end of a bisection, so the budget is never exceeded.
    /// </summary>
    public static double NoiseMultiplier(double targetEpsilon, double delta, double sampleRate, long steps, double tolerance = 0.01)
    {
        if (!(targetEpsilon > 0) || double.IsInfinity(targetEpsilon)) throw new ArgumentOutOfRangeException(nameof(targetEpsilon), targetEpsilon, "the target epsilon must be above 0");
        if (!(tolerance > 0)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "the tolerance must be above 0");
        double EpsilonAt(double sigma)
        {
            var accountant = new RdpAccountant();
            accountant.Step(sigma, sampleRate, steps);
            return accountant.Epsilon(delta).Epsilon;
        }
        double low = 0, high = 10, epsilonHigh = double.PositiveInfinity;
        while (epsilonHigh > targetEpsilon)
        {
            high *= 2;
            epsilonHigh = EpsilonAt(high);
            if (high > 1e6) throw new ArgumentOutOfRangeException(nameof(targetEpsilon), targetEpsilon, "the budget is too small for any noise multiplier up to 10^6");
        }
        while (targetEpsilon - epsilonHigh > tolerance)
        {
            var sigma = (low + high) / 2;
            var epsilon = EpsilonAt(sigma);
            if (epsilon < targetEpsilon) (high, epsilonHigh) = (sigma, epsilon);
            else low = sigma;
        }
        return high;
    }
}
