using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using RedisRateLimiting;
using StackExchange.Redis;

namespace SecureMnist.Server;

/// <summary>What a replica does with a keyed request while Redis, where the shared quotas live, cannot be reached.</summary>
public enum RedisFailureMode
{
    /// <summary>Refuse it with 503: no replica grants more than the shared quota, at the cost of availability.</summary>
    Closed,
    /// <summary>Fall back to this replica's own token bucket: the service stays up, and a key may get up to one quota per replica.</summary>
    Open,
}

/// <summary>
/// Per-key quotas shared by every replica through Redis: one token bucket per key (RedisRateLimiting's, a Lua script that
/// reads and updates the bucket atomically), so N replicas behind a load balancer grant a key its quota once, not N times.
/// When Redis cannot be reached the <see cref="RedisFailureMode"/> decides; the change of state is logged once each way
/// and counted in <see cref="Failures"/>.
/// </summary>
public sealed class SharedQuota : IDisposable
{
    /// <summary>The lease metadata that marks a refusal because Redis could not be reached (not because the quota is spent).</summary>
    public static readonly MetadataName<string> Unavailable = new("SECUREMNIST_QUOTA_STORE_UNAVAILABLE");

    private readonly ConnectionMultiplexer redis;
    private readonly ILogger log;
    private int down;
    private long failures;

    private SharedQuota(ConnectionMultiplexer redis, RedisFailureMode mode, ILogger log)
    {
        this.redis = redis;
        Mode = mode;
        this.log = log;
    }

    public RedisFailureMode Mode { get; }

    /// <summary>Quota checks that could not reach Redis since the start.</summary>
    public long Failures => Interlocked.Read(ref failures);

    /// <summary>True while the last check could not reach Redis.</summary>
    public bool IsDown => Volatile.Read(ref down) == 1;

    /// <summary>
    /// Connects to Redis (<paramref name="configuration"/>: HOST:PORT, or a StackExchange.Redis configuration string). The replica starts
    /// even when Redis is down, and reconnects in the background; commands fail fast instead of queueing while it is away.
    /// </summary>
    public static SharedQuota Connect(string configuration, RedisFailureMode mode, ILogger log)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        ArgumentNullException.ThrowIfNull(log);
        var options = ParseConfiguration(configuration);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectTimeout = 2000;
        options.SyncTimeout = 1000;
        options.AsyncTimeout = 1000;
        options.ClientName ??= "securemnist";
        return new SharedQuota(ConnectionMultiplexer.Connect(options), mode, log);
    }

    /// <summary>The configuration string parsed; throws <see cref="ArgumentException"/> naming the problem when it has no endpoint or does not parse.</summary>
    public static ConfigurationOptions ParseConfiguration(string configuration)
    {
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"'{Redacted(configuration)}' is not a Redis address: {e.Message.Split('\n')[0]}", nameof(ServiceOptions.Redis));
        }
        if (options.EndPoints.Count == 0) throw new ArgumentException($"'{Redacted(configuration)}' names no Redis endpoint; give HOST:PORT", nameof(ServiceOptions.Redis));
        return options;
    }

    private static string Redacted(string configuration) =>
        System.Text.RegularExpressions.Regex.Replace(configuration, "(password|user)=[^,]*", "$1=***", System.Text.RegularExpressions.RegexOptions.IgnoreCase);

    /// <summary>
    /// The bucket of one key at <paramref name="rate"/>, kept in Redis under the key's id and rate; <paramref name="local"/> makes the
    /// same bucket in this process, for <see cref="RedisFailureMode.Open"/>.
    /// </summary>
    public RateLimiter Bucket(string partition, QuotaRate rate, Func<RateLimiter> local) =>
        new SharedBucket(this, new RedisTokenBucketRateLimiter<string>($"securemnist:quota:{partition}", new RedisTokenBucketRateLimiterOptions
        {
            ConnectionMultiplexerFactory = () => redis,
            TokenLimit = rate.Burst,
            TokensPerPeriod = rate.TokensPerPeriod,
            ReplenishmentPeriod = rate.Period,
        }), local);

    private void Failed(Exception e)
    {
        Interlocked.Increment(ref failures);
        if (Interlocked.Exchange(ref down, 1) == 0) ServiceLog.QuotaStoreUnavailable(log, Mode, e.Message.Split('\n')[0]);
    }

    private void Succeeded()
    {
        if (Volatile.Read(ref down) == 1 && Interlocked.Exchange(ref down, 0) == 1) ServiceLog.QuotaStoreRestored(log);
    }

    public void Dispose() => redis.Dispose();

    /// <summary>One key's bucket in Redis, with this replica's own bucket behind it for when Redis is away and the mode is open.</summary>
    /// <remarks>The local bucket, and its replenishment timer, is made on the first fall-back, so closed mode never makes one.</remarks>
    private sealed class SharedBucket(SharedQuota owner, RateLimiter shared, Func<RateLimiter> makeLocal) : RateLimiter
    {
        private readonly Lazy<RateLimiter> local = new(makeLocal, LazyThreadSafetyMode.ExecutionAndPublication);

        public override TimeSpan? IdleDuration =>
            !local.IsValueCreated ? shared.IdleDuration
            : local.Value.IdleDuration is { } idle && shared.IdleDuration is { } sharedIdle ? (idle < sharedIdle ? idle : sharedIdle) : null;

        public override RateLimiterStatistics? GetStatistics() => local.IsValueCreated ? local.Value.GetStatistics() : shared.GetStatistics();

        // The Redis bucket cannot answer without a round trip, so the synchronous attempt always defers to AcquireAsync.
        protected override RateLimitLease AttemptAcquireCore(int permitCount) => Deferred.Instance;

        protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
        {
            try
            {
                var lease = await shared.AcquireAsync(permitCount, cancellationToken).ConfigureAwait(false);
                owner.Succeeded();
                return lease;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                owner.Failed(e);
                if (owner.Mode == RedisFailureMode.Open) return await local.Value.AcquireAsync(permitCount, cancellationToken).ConfigureAwait(false);
                return new UnavailableLease(e.Message.Split('\n')[0]);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                shared.Dispose();
                if (local.IsValueCreated) local.Value.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    private sealed class Deferred : RateLimitLease
    {
        public static readonly Deferred Instance = new();
        public override bool IsAcquired => false;
        public override IEnumerable<string> MetadataNames => [];
        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }

    private sealed class UnavailableLease(string reason) : RateLimitLease
    {
        public override bool IsAcquired => false;
        public override IEnumerable<string> MetadataNames => [Unavailable.Name];
        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = metadataName == Unavailable.Name ? reason : null;
            return metadata is not null;
        }
    }
}
