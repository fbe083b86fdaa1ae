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
        var (partition, burst, refill) = Describe(context);
        return RateLimitPartition.Get(partition, p => new Kept(Bucket(context, p, burst, refill)));
    }

    /// <summary>
    /// Takes <paramref name="images"/> - 1 further tokens for a request of several images. Null when granted; else 413 when the request is
    /// larger than the key's bucket could ever hold, or 429 with when to retry.
    /// </summary>
    public async Task<(int Status, string Detail, TimeSpan RetryAfter)?> ChargeRest(HttpContext context, int images)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (images <= 1) return null;
        var (partition, burst, refill) = Describe(context);
        if (images > burst)
            return (StatusCodes.Status413PayloadTooLarge, $"this request carries {images} images and this API key's quota allows at most {burst} at once; send smaller batches", TimeSpan.Zero);
        using var lease = await Bucket(context, partition, burst, refill).AcquireAsync(images - 1, context.RequestAborted).ConfigureAwait(false);
        if (lease.IsAcquired) return null;
        var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var span) ? span : TimeSpan.FromSeconds(1);
        return (StatusCodes.Status429TooManyRequests, $"this API key's quota is counted in images; the {images} in this request exceed what is left; retry after {Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds))} s", retry);
    }

    private static (string Partition, int Burst, TimeSpan Refill) Describe(HttpContext context)
    {
        var keyId = context.User.FindFirst(ApiKeyAuthentication.KeyIdClaim)?.Value;
        var perMinute = int.TryParse(context.User.FindFirst(ApiKeyAuthentication.RateClaim)?.Value, CultureInfo.InvariantCulture, out var rate) ? rate : 60;
        return ($"{keyId}:{perMinute}", Math.Max(1, perMinute / 10), TimeSpan.FromMinutes(1.0 / perMinute));
    }

    private RateLimiter Bucket(HttpContext context, string partition, int burst, TimeSpan refill) => buckets.GetOrAdd(partition, p =>
    {
        TokenBucketRateLimiter Local() => new(new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = refill,
            QueueLimit = 0,
            AutoReplenishment = true,
        });
        return context.RequestServices.GetService<SharedQuota>() is { } shared ? shared.Bucket(p, burst, refill, Local) : Local();
    });

    /// <summary>A bucket the middleware may use but never disposes as idle: <see cref="ChargeRest"/> holds on to it.</summary>
    private sealed class Kept(RateLimiter inner) : RateLimiter
    {
        public override TimeSpan? IdleDuration => null;

        public override RateLimiterStatistics? GetStatistics() => inner.GetStatistics();

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => inner.AttemptAcquire(permitCount);

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) => inner.AcquireAsync(permitCount, cancellationToken);
    }
}
