using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace SecureMnist.Server;

/// <summary>
/// A token bucket per client address that every request meets before authentication (health probes excepted), so a
/// client without a key cannot make the service hash keys, log refusals or queue work faster than this. 429 with
/// Retry-After above it, held back for up to <see cref="MaxHold"/> first (at most <see cref="MaxHeld"/> at once, then
/// at once): a flooder that waits for its answers slows itself down instead of spending the service's CPU on refusals.
/// Addresses are the TCP peer's; behind a proxy every client shares the proxy's bucket.
/// </summary>
public sealed class ClientAddressLimit(RequestDelegate next, ServiceState state) : IDisposable
{
    public static readonly TimeSpan MaxHold = TimeSpan.FromSeconds(1);
    public const int MaxHeld = 4096;

    private readonly SemaphoreSlim holding = new(MaxHeld, MaxHeld);

    private readonly PartitionedRateLimiter<HttpContext> limiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
    {
        var perSecond = state.Options.RequestsPerSecondPerAddress;
        return RateLimitPartition.GetTokenBucketLimiter(context.Connection.RemoteIpAddress?.ToString() ?? "unknown", _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perSecond,
            TokensPerPeriod = Math.Max(1, perSecond / 10),
            ReplenishmentPeriod = TimeSpan.FromSeconds(Math.Max(1, perSecond / 10) / (double)perSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    });

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (state.Options.RequestsPerSecondPerAddress == 0 || IsProbe(context.Request.Path))
        {
            await next(context).ConfigureAwait(false);
            return;
        }
        using var lease = limiter.AttemptAcquire(context);
        if (lease.IsAcquired)
        {
            await next(context).ConfigureAwait(false);
            return;
        }
        var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
        if (holding.Wait(0))
        {
            try
            {
                await Task.Delay(retry < MaxHold ? retry : MaxHold, context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return; // the client left
            }
            finally
            {
                holding.Release();
            }
        }
        var seconds = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds));
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        var detail = $"this address sends more than {state.Options.RequestsPerSecondPerAddress} requests per second; retry after {seconds} s";
        Decisions.Refused(context, detail);
        await Problems.Write(context, StatusCodes.Status429TooManyRequests, "Too many requests", detail).ConfigureAwait(false);
    }

    public void Dispose()
    {
        limiter.Dispose();
        holding.Dispose();
    }

    /// <summary>Health probes (the service's own and the Open Inference Protocol's) are never limited: an orchestrator must always get an answer.</summary>
    public static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/v2/health")
        || (path.StartsWithSegments("/v2/models") && path.Value!.EndsWith("/ready", StringComparison.Ordinal));
}
