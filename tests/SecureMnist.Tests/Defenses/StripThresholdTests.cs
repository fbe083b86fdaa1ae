using SecureMnist;
using SecureMnist.Defenses;

namespace SecureMnist.Tests.Defenses;

public sealed class StripThresholdTests
{
    [Theory]
    [InlineData(1000, 0.05, 0.95, 39)] // binomial tail, checked against an exact evaluation with integer binomials
    [InlineData(2000, 0.05, 0.95, 84)]
    [InlineData(1000, 0.05, 0.5, 50)] // at 50% confidence the bound is the plain quantile
    [InlineData(59, 0.05, 0.95, 1)] // the smallest calibration set that can bound 5% at 95%: 1 - 0.95^59 > 0.95
    public void Conservative_rank_is_the_binomial_bound(int n, double rate, double confidence, int expected) =>
        Assert.Equal(expected, ThresholdCalibration.ConservativeRank(n, rate, confidence));

    [Fact]
    public void Too_few_calibration_inputs_give_no_rank() => Assert.Null(ThresholdCalibration.ConservativeRank(58, 0.05, 0.95));

    [Fact]
    public void Threshold_at_the_rank_keeps_the_true_rate_below_target_in_most_trials()
    {
        // Clean scores uniform on [0, 1): the true FPR of a threshold t is t itself.
        const int n = 1000, trials = 2000;
        var rank = ThresholdCalibration.ConservativeRank(n, 0.05, 0.95)!.Value;
        var random = new SeededRandom(7);
        var scores = new double[n];
        int within = 0, withinPlainQuantile = 0;
        for (var trial = 0; trial < trials; trial++)
        {
            for (var i = 0; i < n; i++) scores[i] = random.NextDouble();
            Array.Sort(scores);
            if (scores[rank - 1] <= 0.05) within++;
            if (scores[(int)(0.05 * n) - 1] <= 0.05) withinPlainQuantile++;
        }
        Assert.InRange((double)within / trials, 0.93, 1.0); // 0.95 by construction, give or take the noise of 2,000 trials
        Assert.InRange((double)withinPlainQuantile / trials, 0.4, 0.65); // the plain quantile meets the target about half the time
    }
}
