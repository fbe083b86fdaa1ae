using SecureMnist.Privacy;

namespace SecureMnist.Tests.Privacy;

/// <summary>
/// The RDP accountant of the sampled Gaussian mechanism against published values: the unit tests of TensorFlow Privacy's
/// rdp_accountant (rdp_accountant_test.py) and of Opacus (accountants_test.py, and the example in its analysis/rdp.py).
/// </summary>
public sealed class RdpAccountantTests
{
    [Fact]
    public void Rdp_of_one_order_matches_tf_privacy()
    {
        // TF Privacy test_compute_rdp_scalar: compute_rdp(q=0.1, noise_multiplier=2, steps=10, orders=5) = 0.07737 (5 places).
        Assert.Equal(0.07737, RenyiDp.SampledGaussian(0.1, 2, 10, [5])[0], 5);
    }

    [Fact]
    public void Rdp_over_integer_fractional_and_infinite_orders_matches_tf_privacy()
    {
        // TF Privacy test_compute_rdp_sequence: q=0.01, sigma=2.5, 50 steps; tolerance 1e-5 as there.
        double[] orders = [1.5, 2.5, 5, 50, 100, double.PositiveInfinity];
        double[] published = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307, double.PositiveInfinity];
        var rdp = RenyiDp.SampledGaussian(0.01, 2.5, 50, orders);
        for (var i = 0; i < orders.Length - 1; i++) Assert.InRange(rdp[i], published[i] - 1e-5, published[i] + 1e-5);
        Assert.True(double.IsPositiveInfinity(rdp[^1]));
    }

    [Fact]
    public void No_data_costs_nothing_and_no_sampling_is_the_gaussian_mechanism()
    {
        Assert.Equal(0, RenyiDp.SampledGaussian(0, 10, 1, [20])[0]);
        Assert.Equal(0.1, RenyiDp.SampledGaussian(1, 10, 1, [20])[0], 12); // alpha / (2 sigma^2)
        Assert.True(double.IsPositiveInfinity(RenyiDp.SampledGaussian(0.5, 0, 1, [2])[0])); // no noise, no privacy
    }

    [Theory]
    // Parameters of TF Privacy's test_compute_log_a_equals_mp, where the integrand is tame enough for double precision.
    [InlineData(1e-4, 1.0, 1.5)]
    [InlineData(1e-3, 1.0, 2.0)]
    [InlineData(0.01, 10, 20)]
    [InlineData(0.1, 100, 20.5)]
    [InlineData(0.1, 2, 7.25)]
    [InlineData(0.04, 1.5, 3.3)]
    public void Log_a_equals_the_integral_it_stands_for(double q, double sigma, double order)
    {
        // A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha], by the trapezoid rule over +-40 sigma.
        const int n = 400_000;
        double lo = -40 * sigma, hi = 40 * sigma + 1, h = (hi - lo) / n, sum = 0;
        for (var k = 0; k <= n; k++)
        {
            var z = lo + (k * h);
            var density = Math.Exp(-z * z / (2 * sigma * sigma)) / (sigma * Math.Sqrt(2 * Math.PI));
            var value = density * Math.Pow((1 - q) + (q * Math.Exp(((2 * z) - 1) / (2 * sigma * sigma))), order);
            sum += (k == 0 || k == n ? 0.5 : 1) * value;
        }
        var expected = Math.Log(sum * h);
        var actual = RenyiDp.LogA(q, sigma, order);
        Assert.InRange(actual, expected - (1e-4 * Math.Abs(expected)) - 1e-9, expected + (1e-4 * Math.Abs(expected)) + 1e-9);
    }

    [Fact]
    public void Conversion_of_constant_rdp_picks_the_largest_order_as_tf_privacy_does()
    {
        // TF Privacy test_get_privacy_spent_check_target_delta: rdp 1.1 at orders 2..32, delta 1e-5 -> eps 1.32783806176 at order 32.
        var orders = Enumerable.Range(2, 31).Select(o => (double)o).ToArray();
        var (epsilon, order) = RenyiDp.Epsilon(orders, [.. orders.Select(_ => 1.1)], 1e-5);
        Assert.Equal(32, order);
        Assert.Equal(1.32783806176, epsilon, 9);
    }

    [Fact]
    public void The_gaussian_mechanism_calibrated_for_eps_1_converts_to_eps_1()
    {
        // TF Privacy: sigma 4.530877117 without sampling is (1, 1e-6)-DP over the orders 1.000 .. 99.999 (7 places there); order 1 itself is not an RDP order here, so from 1.001.
        var orders = Enumerable.Range(1001, 98_999).Select(i => 0.001 * i).ToArray();
        var rdp = RenyiDp.SampledGaussian(1, 4.530877117, 1, orders);
        Assert.Equal(1.0, RenyiDp.Epsilon(orders, rdp, 1e-6).Epsilon, 6);
    }

    [Fact]
    public void Opacus_accountant_test_value()
    {
        // Opacus test_rdp_accountant: noise 1.5, sample rate 0.04, int(90 / 0.04) = 2250 steps, delta 1e-5 -> 7.32911117143.
        var accountant = new RdpAccountant();
        for (var i = 0; i < 2250; i++) accountant.Step(1.5, 0.04);
        Assert.Equal(7.32911117143, accountant.Epsilon(1e-5).Epsilon, 6);
        Assert.Equal(2250, accountant.Steps);
    }

    [Fact]
    public void Opacus_example_composes_two_mechanisms()
    {
        // Opacus analysis/rdp.py example: [(q 1e-5, sigma 1.0, 10 steps), (1e-4, 3.0, 4)], orders 2..32, delta 1e-5 -> (0.336, 23).
        var orders = Enumerable.Range(2, 31).Select(o => (double)o).ToArray();
        var accountant = new RdpAccountant();
        accountant.Step(1.0, 1e-5, 10);
        accountant.Step(3.0, 1e-4, 4);
        var (epsilon, order) = accountant.Epsilon(1e-5, orders);
        Assert.Equal(0.336, epsilon, 3);
        Assert.Equal(23, order);
    }

    [Fact]
    public void Composition_stays_under_tf_privacys_bound()
    {
        // TF Privacy test_check_composition: the improved conversion must not exceed the old one's 8.509656.
        double[] orders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
        var first = RenyiDp.SampledGaussian(1e-4, 0.4, 40_000, orders);
        var second = RenyiDp.SampledGaussian(0.1, 2, 100, orders);
        var epsilon = RenyiDp.Epsilon(orders, [.. first.Zip(second, (a, b) => a + b)], 1e-5).Epsilon;
        Assert.True(epsilon <= 8.509656, $"epsilon {epsilon}");
        Assert.True(epsilon > 7, $"epsilon {epsilon}"); // and not trivially small
    }

    [Theory]
    // Opacus test_get_noise_multiplier_rdp_epochs (90 epochs at q 0.04 -> 1.416) and _steps (2000 steps -> 1.3562), eps 8, delta 1e-5.
    [InlineData(2250, 1.416)]
    [InlineData(2000, 1.3562)]
    public void Noise_multiplier_for_a_target_epsilon_matches_opacus(int steps, double published)
    {
        var sigma = RdpAccountant.NoiseMultiplier(targetEpsilon: 8, delta: 1e-5, sampleRate: 0.04, steps: steps);
        Assert.InRange(sigma, published - 5e-5, published + 5e-5);
        var accountant = new RdpAccountant();
        accountant.Step(sigma, 0.04, steps);
        Assert.True(accountant.Epsilon(1e-5).Epsilon <= 8); // the calibrated noise never overspends
    }

    [Fact]
    public void Bad_parameters_are_refused()
    {
        var accountant = new RdpAccountant();
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Step(1, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Step(-1, 0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Step(double.NaN, 0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Step(1, 0.1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Epsilon(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => accountant.Epsilon(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => RenyiDp.SampledGaussian(0.1, 1, 1, [1.0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RdpAccountant.NoiseMultiplier(0, 1e-5, 0.01, 100));
        Assert.Equal(0, accountant.Epsilon(1e-5).Epsilon); // nothing spent yet
    }
}
