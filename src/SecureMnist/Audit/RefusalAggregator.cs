namespace SecureMnist.Audit;

/// <summary>Settings of <see cref="RefusalAggregator"/>.</summary>
/// <param name="WindowSeconds">Length of one aggregation window: each client gets at most one record per outcome per window.</param>
/// <param name="MaxClients">Client-and-outcome pairs tracked within one window; refusals beyond them share one "(other clients)" record per outcome.</param>
public sealed record RefusalAggregation(double WindowSeconds = 60, int MaxClients = 10_000)
{
    public const string OtherClients = "(other clients)";

    public void Validate()
    {
        if (!(WindowSeconds is >= 0.05 and <= 3600)) throw new ArgumentOutOfRangeException(nameof(WindowSeconds), WindowSeconds, "the aggregation window must be 0.05 s to 1 hour");
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxClients, 1);
    }
}

/// <summary>
/// Counts refused unauthenticated requests in memory and writes one audit record per client address, outcome and window,
/// with the count, instead of one fsynced record per request: anonymous traffic cannot grow the log faster than
/// (clients tracked + 1) x outcomes records per window, nor queue behind-the-scenes writes ahead of real decisions.
/// </summary>
public sealed class RefusalAggregator : IAsyncDisposable
{
    private readonly AuditLog log;
    private readonly RefusalAggregation options;
    private readonly TimeProvider time;
    private readonly Lock gate = new();
    private readonly ITimer timer;
    private Dictionary<(string Client, AuditOutcome Outcome), Tally> window = [];
    private DateTimeOffset windowStart;
    private long windows;
    private bool disposed;

    public RefusalAggregator(AuditLog log, RefusalAggregation? options = null, TimeProvider? time = null)
    {
        this.log = log ?? throw new ArgumentNullException(nameof(log));
        this.options = options ?? new RefusalAggregation();
        this.options.Validate();
        this.time = time ?? TimeProvider.System;
        windowStart = this.time.GetUtcNow();
        var period = TimeSpan.FromSeconds(this.options.WindowSeconds);
        // A failed write (the log closing under it) is observed here; the counts it held are lost with the process anyway.
        timer = this.time.CreateTimer(_ => _ = FlushAsync().ContinueWith(t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default), null, period, period);
    }

    /// <summary>Refusals counted and not yet written.</summary>
    public long Pending
    {
        get
        {
            lock (gate) return window.Values.Sum(t => t.Count);
        }
    }

    /// <summary>Counts one refusal; O(1), no I/O.</summary>
    public void Count(string? client, AuditOutcome outcome, string reason, string? modelDigest)
    {
        lock (gate)
        {
            if (disposed) return;
            var key = (client ?? "unknown", outcome);
            if (!window.ContainsKey(key) && window.Count >= options.MaxClients) key = (RefusalAggregation.OtherClients, outcome);
            if (window.TryGetValue(key, out var tally)) tally.Count++;
            else window[key] = new Tally(reason, modelDigest);
        }
    }

    /// <summary>Writes the current window's records (one per client and outcome) and starts a new window.</summary>
    public Task FlushAsync()
    {
        Dictionary<(string Client, AuditOutcome Outcome), Tally> closing;
        DateTimeOffset start;
        long number;
        lock (gate)
        {
            (closing, window) = (window, []);
            (start, windowStart) = (windowStart, time.GetUtcNow());
            number = ++windows;
        }
        if (closing.Count == 0) return Task.CompletedTask;
        var now = time.GetUtcNow();
        var seconds = Math.Round((now - start).TotalSeconds, 3);
        return Task.WhenAll(closing.OrderBy(e => e.Key.Client, StringComparer.Ordinal).Select(e =>
            log.AppendAsync(new AuditRecord(now, $"refusals-{number}", null, null, e.Value.ModelDigest, e.Key.Outcome, null, null, 0,
                $"{e.Value.Count} unauthenticated request(s) in {seconds} s, first refused with: {e.Value.Reason}", e.Key.Client, e.Value.Count))));
    }

    /// <summary>Stops the window timer and writes what is still counted.</summary>
    public async ValueTask DisposeAsync()
    {
        await timer.DisposeAsync().ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
        lock (gate) disposed = true;
    }

    private sealed class Tally(string reason, string? modelDigest)
    {
        public string Reason { get; } = reason;
        public string? ModelDigest { get; } = modelDigest;
        public long Count { get; set; } = 1;
    }
}
