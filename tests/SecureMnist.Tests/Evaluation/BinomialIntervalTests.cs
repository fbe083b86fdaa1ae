using SecureMnist.Assessment;
using SecureMnist.Evaluation;

namespace SecureMnist.Tests.Evaluation;

public sealed class BinomialIntervalTests
{
    [Theory]
    // Wilson (1927) score interval at z = 1.96: 0 of 10 gives [0, 0.2775]; 81 of 263 gives [0.2553, 0.3662] (the worked example in
    // Brown, Cai and DasGupta 2001's notation; the same figures as R's prop.test(81, 263, correct = FALSE)).
    [InlineData(0, 10, 0.0, 0.2775)]
    [InlineData(10, 10, 0.7225, 1.0)]
    [InlineData(81, 263, 0.2553, 0.3662)]
    [InlineData(9284, 10000, 0.9232, 0.9333)]
    public void Wilson_matches_published_values(long successes, long trials, double low, double high)
    {
        var interval = BinomialInterval.Wilson(successes, trials);
        Assert.Equal(low, interval.Low, 4);
        Assert.Equal(high, interval.High, 4);
    }

    [Theory]
    [InlineData(0, 100)]
    [InlineData(100, 100)]
    [InlineData(0, 10_000)]
    [InlineData(10_000, 10_000)]
    public void An_interval_at_0_or_n_successes_holds_the_measured_value_exactly(long successes, long trials)
    {
        var interval = BinomialInterval.Wilson(successes, trials);
        var measured = (double)successes / trials;
        Assert.True(interval.Low <= measured && measured <= interval.High, $"{measured} outside [{interval.Low}, {interval.High}]");
    }

    [Fact]
    public void Bad_counts_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BinomialInterval.Wilson(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => BinomialInterval.Wilson(11, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => BinomialInterval.Wilson(-1, 10));
    }

    [Fact]
    public void A_measured_accuracy_prints_its_interval()
    {
        var metric = Metric.Proportion(0.574, 500, "robust accuracy");
        Assert.Equal("57.40% (95% CI 53.03%–61.66%)", metric.Format());
        Assert.Equal("57.40%", Metric.Percent(0.574, "no interval").Format());
    }
}
