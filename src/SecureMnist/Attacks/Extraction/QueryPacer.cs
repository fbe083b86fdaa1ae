namespace SecureMnist.Attacks.Extraction;

/// <summary>
/// The attacker's copy of its own key's quota: a token bucket of a tenth of the per-minute rate in images (as the service keeps it),
/// refilled continuously. An attacker who knows its quota (its plan, or <c>api-keys list</c>) sends each batch when the bucket holds it,
/// instead of being refused and waiting out whole seconds of <c>Retry-After</c>: the efficient attacker the wall-time figure should
/// assume. <see cref="Reserve"/> takes the tokens and says how long to wait first.
/// </summary>
public sealed class QueryPacer
{
    private readonly Func<double> clockSeconds;
    private double tokens;
    private double last;

    /// <param name="clockSeconds">The clock, in seconds (default: a monotonic stopwatch).</param>
    public QueryPacer(int imagesPerMinute, Func<double>? clockSeconds = null)
    {
        if (imagesPerMinute is < 1 or > 10_000_000) throw new ArgumentOutOfRangeException(nameof(imagesPerMinute), imagesPerMinute, "the quota must be 1 to 10,000,000 images per minute");
        ImagesPerMinute = imagesPerMinute;
        Burst = Math.Max(1, imagesPerMinute / 10);
        if (clockSeconds is null)
        {
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            clockSeconds = () => stopwatch.Elapsed.TotalSeconds;
        }
        this.clockSeconds = clockSeconds;
        tokens = Burst;
        last = clockSeconds();
    }

    public int ImagesPerMinute { get; }

    /// <summary>The most images one request may carry (the bucket's size).</summary>
    public int Burst { get; }

    /// <summary>Seconds the pacer has asked to wait so far.</summary>
    public double WaitedSeconds { get; private set; }

    /// <summary>
    /// The service refused a request: its bucket is emptier than this copy thinks (its refill runs on a timer, and a busy server's ticks
    /// come late). Counts from empty from now on, and reserves the refused <paramref name="images"/> again: the returned wait is when
    /// to resend them.
    /// </summary>
    public TimeSpan Refused(int images)
    {
        last = clockSeconds();
        tokens = Math.Min(tokens, 0);
        return Reserve(images);
    }

    /// <summary>Takes <paramref name="images"/> tokens (at most <see cref="Burst"/>) and returns how long to wait before sending them.</summary>
    public TimeSpan Reserve(int images)
    {
        if (images < 1 || images > Burst) throw new ArgumentOutOfRangeException(nameof(images), images, $"a request may carry 1 to {Burst} images under this quota");
        var now = clockSeconds();
        tokens = Math.Min(Burst, tokens + (now - last) * ImagesPerMinute / 60.0);
        last = now;
        tokens -= images;
        if (tokens >= 0) return TimeSpan.Zero;
        // The debt is repaid by the refill; the clock moves on while the caller waits, and the next reserve counts from then.
        var wait = -tokens * 60.0 / ImagesPerMinute;
        WaitedSeconds += wait;
        return TimeSpan.FromSeconds(wait);
    }
}
