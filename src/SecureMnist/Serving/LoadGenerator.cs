using System.Diagnostics;
using System.Net.Http.Headers;

namespace SecureMnist.Serving;

/// <summary>
/// A bounded HTTP load run against <c>POST /v1/predict</c>: either closed-loop (a fixed number of workers, each
/// sending its next request when the last is answered) or open-loop at a fixed rate (latency measured from each
/// request's scheduled time, so a slow server cannot hide its queueing). Bounded by duration, request count and
/// requests in flight. A null secret sends requests without an API key (an anonymous flood). With <see cref="Bodies"/>, requests send
/// those bodies in turn instead of <see cref="Body"/> every time (varied digits, as real clients send).
/// </summary>
public sealed record LoadOptions(string? Secret, byte[] Body, string ContentType = "image/png", int Concurrency = 32,
    double DurationSeconds = 10, double? RatePerSecond = null, int MaxRequests = 1_000_000, int MaxInFlight = 1024, IReadOnlyList<byte[]>? Bodies = null)
{
    public void Validate()
    {
        if (Bodies is { Count: 0 }) throw new ArgumentException("give at least one body", nameof(Bodies));
        ArgumentOutOfRangeException.ThrowIfLessThan(Concurrency, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Concurrency, 4096);
        if (DurationSeconds is <= 0 or > 3600) throw new ArgumentOutOfRangeException(nameof(DurationSeconds), DurationSeconds, "the duration must be in (0, 3600] seconds");
        if (RatePerSecond is <= 0 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(RatePerSecond), RatePerSecond, "the rate must be positive");
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRequests, 1);
    }
}

/// <summary>What a load run saw. Latencies are of answered requests, in milliseconds.</summary>
public sealed record LoadResult(
    string Mode, double TargetRate, int Sent, int Answered, int Failed, IReadOnlyDictionary<int, int> StatusCounts,
    double Seconds, double AnsweredPerSecond, double SucceededPerSecond, double P50Milliseconds, double P99Milliseconds, double MaxMilliseconds);

public static class LoadGenerator
{
    /// <summary>
    /// An HTTP client whose connections leave from <paramref name="localAddress"/> (say 127.0.0.2, another loopback
    /// address), so a load can play a second client host on one machine.
    /// </summary>
    public static HttpClient ClientFrom(System.Net.IPAddress localAddress, Uri baseAddress) => ClientFrom([localAddress], baseAddress);

    /// <summary>
    /// An HTTP client whose connections leave from <paramref name="localAddresses"/> in turn (say 127.0.0.10 to 127.0.0.13), so a load
    /// plays several client hosts: the service's per-address limit then caps each of them, as it would real clients behind one balancer.
    /// </summary>
    public static HttpClient ClientFrom(IReadOnlyList<System.Net.IPAddress> localAddresses, Uri baseAddress)
    {
        ArgumentNullException.ThrowIfNull(localAddresses);
        if (localAddresses.Count == 0) throw new ArgumentException("at least one local address is needed", nameof(localAddresses));
        var next = 0;
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 4096,
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new System.Net.IPEndPoint(localAddresses[(int)((uint)Interlocked.Increment(ref next) % localAddresses.Count)], 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler, disposeHandler: true) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public static async Task<LoadResult> Run(HttpClient client, LoadOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var latencies = new List<double>();
        var statuses = new Dictionary<int, int>();
        int sent = 0, failed = 0;
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(options.DurationSeconds);
        var bodies = options.Bodies ?? [options.Body];
        var nextBody = -1;

        async Task Send(TimeSpan scheduled)
        {
            using var content = new ByteArrayContent(bodies[(int)((uint)Interlocked.Increment(ref nextBody) % bodies.Count)]);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(options.ContentType);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = content };
            if (options.Secret is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.Secret);
            try
            {
                using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
                _ = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                var latency = (clock.Elapsed - scheduled).TotalMilliseconds;
                lock (latencies)
                {
                    latencies.Add(latency);
                    statuses[(int)response.StatusCode] = statuses.GetValueOrDefault((int)response.StatusCode) + 1;
                }
            }
            catch (HttpRequestException)
            {
                Interlocked.Increment(ref failed);
            }
        }

        if (options.RatePerSecond is { } rate)
        {
            // Open loop: request k is due at k / rate; a bounded number may be outstanding.
            using var inFlight = new SemaphoreSlim(options.MaxInFlight);
            var pending = new List<Task>();
            for (var k = 0; k < options.MaxRequests; k++)
            {
                var due = TimeSpan.FromSeconds(k / rate);
                if (due >= end || cancellationToken.IsCancellationRequested) break;
                var wait = due - clock.Elapsed;
                if (wait > TimeSpan.Zero) await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                await inFlight.WaitAsync(cancellationToken).ConfigureAwait(false);
                sent++;
                pending.Add(Task.Run(async () =>
                {
                    try { await Send(due).ConfigureAwait(false); }
                    finally { inFlight.Release(); }
                }, cancellationToken));
            }
            await Task.WhenAll(pending).ConfigureAwait(false);
        }
        else
        {
            var workers = Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
            {
                while (clock.Elapsed < end && !cancellationToken.IsCancellationRequested && Interlocked.Increment(ref sent) <= options.MaxRequests)
                    await Send(clock.Elapsed).ConfigureAwait(false);
            }, cancellationToken)).ToArray();
            await Task.WhenAll(workers).ConfigureAwait(false);
            sent = Math.Min(sent, options.MaxRequests);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        latencies.Sort();
        double Quantile(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
        var succeeded = statuses.Where(s => s.Key is >= 200 and < 300).Sum(s => s.Value);
        return new LoadResult(options.RatePerSecond is null ? $"closed loop, {options.Concurrency} workers" : "open loop",
            options.RatePerSecond ?? 0, sent, latencies.Count, failed, statuses, seconds, latencies.Count / seconds, succeeded / seconds,
            Quantile(0.5), Quantile(0.99), latencies.Count == 0 ? 0 : latencies[^1]);
    }
}
