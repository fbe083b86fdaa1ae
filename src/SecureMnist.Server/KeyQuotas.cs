using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace SecureMnist.Server;

/// <summary>
/// Per-key quotas counted in images, not requests. The rate-limiting middleware takes one token as a request arrives; a handler that
/// then finds N images in it takes the other N - 1 from the same bucket (<see cref="ChargeRest"/>), so a batch costs what as many single
/// requests would. Buckets hold a tenth of the per-minute rate (at least one); a batch larger than a key's bucket can never pass and is
/// refused with that limit named. One bucket per issued key, never released (the middleware would otherwise drop idle ones).
/// </summary>
public sealed class KeyQuotas
{
    private readonly ConcurrentDictionary<string, RateLimiter> buckets = new(StringComparer.Ordinal);

    /// <summary>The partition the middleware uses for the request's key: the same bucket <see cref="ChargeRest"/> draws on.</summary>
    public RateLimitPartition<string> Partition(HttpContext context)
    {
        var (partition, rate) = Describe(context);
        return RateLimitPartition.Get(partition, p => new Kept(Bucket(context, p, rate)));
    }

    /// <summary>
    /// Takes <paramref name="images"/> - 1 further tokens for a request of several images. Null when granted; else 413 when the request is
    /// larger than the key's bucket could ever hold, or 429 with when to retry.
    /// </summary>
    public async Task<(int Status, string Detail, TimeSpan RetryAfter)?> ChargeRest(HttpContext context, int images)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (images <= 1) return null;
        var (partition, rate) = Describe(context);
        if (images > rate.Burst)
            return (StatusCodes.Status413PayloadTooLarge, $"this request carries {images} images and this API key's quota allows at most {rate.Burst} at once; send smaller batches", TimeSpan.Zero);
        using var lease = await Bucket(context, partition, rate).AcquireAsync(images - 1, context.RequestAborted).ConfigureAwait(false);
        if (lease.IsAcquired) return null;
        var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var span) ? span : TimeSpan.FromSeconds(1);
        return (StatusCodes.Status429TooManyRequests, $"this API key's quota is counted in images; the {images} in this request exceed what is left; retry after {Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds))} s", retry);
    }

    private static (string Partition, QuotaRate Rate) Describe(HttpContext context)
    {
        var keyId = context.User.FindFirst(ApiKeyAuthentication.KeyIdClaim)?.Value;
        var perMinute = int.TryParse(context.User.FindFirst(ApiKeyAuthentication.RateClaim)?.Value, CultureInfo.InvariantCulture, out var rate) ? rate : 60;
        return ($"{keyId}:{perMinute}", new QuotaRate(perMinute));
    }

    private RateLimiter Bucket(HttpContext context, string partition, QuotaRate rate) => buckets.GetOrAdd(partition, p =>
        context.RequestServices.GetService<SharedQuota>() is { } shared ? shared.Bucket(p, rate, rate.LocalBucket) : rate.LocalBucket());

    /// <summary>A bucket the middleware may use but never disposes as idle: <see cref="ChargeRest"/> holds on to it.</summary>
    private sealed class Kept(RateLimiter inner) : RateLimiter
    {
        public override TimeSpan? IdleDuration => null;

        public override RateLimiterStatistics? GetStatistics() => inner.GetStatistics();

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => inner.AttemptAcquire(permitCount);

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) => inner.AcquireAsync(permitCount, cancellationToken);
    }
}

/// <summary>
/// A key's quota as a token bucket: <see cref="Burst"/> tokens (a tenth of the per-minute rate, at least one), refilled by
/// <see cref="TokensPerPeriod"/> every <see cref="Period"/>. The period is never shorter than <see cref="ShortestPeriod"/>: the refill
/// runs on a timer, and one token per 60 s / rate asks it for a period under a millisecond above 60,000 per minute, which it cannot keep:
/// at 1,000,000 per minute that bucket gave 1 token in the 600 ms after its burst (QuotaRateTests), where the rate promises 10,000.
/// </summary>
public readonly record struct QuotaRate(int PerMinute)
{
    public static TimeSpan ShortestPeriod { get; } = TimeSpan.FromMilliseconds(100);

    public int Burst => Math.Max(1, PerMinute / 10);

    /// <summary>Tokens added each period: one up to 600 per minute, then enough that the period stays between 100 and 200 ms.</summary>
    public int TokensPerPeriod => Math.Max(1, (int)Math.Ceiling((PerMinute * ShortestPeriod.TotalMinutes) - 1e-9));

    public TimeSpan Period => TimeSpan.FromMinutes((double)TokensPerPeriod / Math.Max(1, PerMinute));

    /// <summary>The bucket in this process.</summary>
    public TokenBucketRateLimiter LocalBucket() => new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = Burst,
        TokensPerPeriod = TokensPerPeriod,
        ReplenishmentPeriod = Period,
        QueueLimit = 0,
        AutoReplenishment = true,
    });
}
