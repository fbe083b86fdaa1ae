using SecureMnist.Server;

namespace SecureMnist.Tests.Service;

/// <summary>A key's token bucket refills at its per-minute rate, however high: the refill period never drops below what a timer can fire.</summary>
public sealed class QuotaRateTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(120)]
    [InlineData(600)]
    [InlineData(601)]
    [InlineData(1_200)]
    [InlineData(60_000)]
    [InlineData(60_001)]
    [InlineData(1_000_000)]
    public void The_bucket_refills_at_the_key_rate_in_periods_a_timer_can_keep(int perMinute)
    {
        var rate = new QuotaRate(perMinute);
        Assert.Equal(Math.Max(1, perMinute / 10), rate.Burst);
        Assert.True(rate.Period >= QuotaRate.ShortestPeriod, $"period {rate.Period.TotalMilliseconds} ms");
        if (perMinute >= 600) Assert.True(rate.Period < 2 * QuotaRate.ShortestPeriod, $"period {rate.Period.TotalMilliseconds} ms");
        Assert.Equal(perMinute, rate.TokensPerPeriod / rate.Period.TotalMinutes, perMinute * 1e-5);
    }

    [Fact]
    public void A_key_of_a_million_images_a_minute_is_refilled_after_its_burst()
    {
        // One token per 60 us was the old shape: a timer cannot keep a period under a millisecond, and that bucket gave 1 token in these
        // 600 ms (measured), so a key got its burst of 100,000 and then next to nothing, where its rate promises about 16,700 a second.
        using var bucket = new QuotaRate(1_000_000).LocalBucket();
        using (var burst = bucket.AttemptAcquire(100_000)) Assert.True(burst.IsAcquired);
        Thread.Sleep(600);
        var refilled = 0;
        while (refilled < 100_000)
        {
            using var lease = bucket.AttemptAcquire(1);
            if (!lease.IsAcquired) break;
            refilled++;
        }
        // 600 ms at 16,667 a second is 10,000; the timer's ticks fall anywhere in that window, and a loaded machine delays them.
        Assert.InRange(refilled, 3_000, 15_000);
    }
}
