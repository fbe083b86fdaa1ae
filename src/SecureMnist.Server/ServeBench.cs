using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>What <see cref="ServeBench"/> runs: the service's settings and the load against it.</summary>
/// <param name="Template">The service's settings (model, public key, data root, policy, precision, extraction monitor); the bench sets the keys file, the audit folder and key, and the URL.</param>
/// <param name="Digits">The PNG bodies the measured load sends in turn (distinct digits, as real clients send); the first also feeds the floods.</param>
/// <param name="Seconds">Each measured phase: every throughput run, the latency run and the keyed client alone.</param>
/// <param name="FloodSeconds">The quota flood; null for max(20, 2 x <paramref name="Seconds"/>), long enough that the refill, not the burst, sets the allowance.</param>
/// <param name="AnonymousSeconds">The anonymous flood beside the keyed client.</param>
public sealed record ServeBenchOptions(ServiceOptions Template, IReadOnlyList<byte[]> Digits, double Seconds = 10, int Concurrency = 64, int Runs = 3,
    int FloodRequestsPerMinute = 1200, double? FloodSeconds = null, double AnonymousSeconds = 20, double KeyedRate = 50)
{
    /// <summary>The quota flood's length in effect.</summary>
    public double FloodSecondsInEffect => FloodSeconds ?? Math.Max(20, 2 * Seconds);

    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Template);
        ArgumentNullException.ThrowIfNull(Digits);
        if (Digits.Count is < 1 or > 10_000) throw new ArgumentOutOfRangeException(nameof(Digits), Digits.Count, "give 1 to 10,000 digits");
        if (Seconds is not (> 0 and <= 3600)) throw new ArgumentOutOfRangeException(nameof(Seconds), Seconds, "each phase lasts more than 0 and at most 3600 seconds");
        if (Runs is < 1 or > 9) throw new ArgumentOutOfRangeException(nameof(Runs), Runs, "1 to 9 throughput runs");
        if (Concurrency is < 1 or > 4096) throw new ArgumentOutOfRangeException(nameof(Concurrency), Concurrency, "1 to 4,096 workers");
        if (FloodRequestsPerMinute is < 10 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(FloodRequestsPerMinute), FloodRequestsPerMinute, "the flooding key's quota is 10 to 1,000,000 requests per minute");
        if (FloodSeconds is not (null or (> 0 and <= 3600))) throw new ArgumentOutOfRangeException(nameof(FloodSeconds), FloodSeconds, "the quota flood lasts more than 0 and at most 3600 seconds");
        if (AnonymousSeconds is not (> 0 and <= 3600)) throw new ArgumentOutOfRangeException(nameof(AnonymousSeconds), AnonymousSeconds, "the anonymous flood lasts more than 0 and at most 3600 seconds");
        if (KeyedRate is not (> 0 and <= 10_000)) throw new ArgumentOutOfRangeException(nameof(KeyedRate), KeyedRate, "the keyed client sends more than 0 and at most 10,000 requests/s");
    }
}

/// <summary>One key flooding at full speed against its quota while a second key sends 5 requests/s.</summary>
/// <param name="Deviation">Accepted over the allowance (burst + refill over the flood), minus 1: near 0 when the quota holds.</param>
public sealed record FloodResult(int RequestsPerMinute, int Burst, double Seconds, int FloodSent, int FloodAccepted, double FloodAllowed, double Deviation,
    int SteadySent, int SteadySucceeded);

/// <summary>
/// Requests without a key from another client address at full speed, while a keyed client sends at a fixed rate; the
/// audit log's records for them against the bound (addresses x outcomes x windows).
/// </summary>
public sealed record AnonymousFloodResult(double Seconds, int AddressRate, int Sent, int Answered, IReadOnlyDictionary<int, int> StatusCounts,
    long AuditRecords, long AuditRecordsBound, long AuditedRequests, double KeyedRate, double KeyedP99Unloaded, double KeyedP99DuringFlood,
    int KeyedSent, int KeyedSucceeded);

/// <param name="Throughput">The closed-loop run with the median rate of <paramref name="ThroughputRuns"/>.</param>
public sealed record ServeBenchResult(string Model, AdversarialAction OnAdversarial, InferencePrecision Precision, ExtractionAction ExtractionMonitor, int TorchThreads,
    IReadOnlyList<double> ThroughputRuns, LoadResult Throughput, LoadResult Latency, FloodResult Flood,
    AnonymousFloodResult AnonymousFlood, long AuditRecords, long AuditedRequests, long AnsweredRequests, bool AuditIntact, string? AuditProblem,
    int Digits, IReadOnlyList<string> FlaggedKeys, SecureMnist.Training.MachineInfo Machine)
{
    /// <summary>
    /// The log verifies, every answered request is in it once (its own record, or counted in an aggregated one), and the anonymous
    /// flood's records stay within their bound.
    /// </summary>
    public bool Consistent => AuditIntact && AuditedRequests == AnsweredRequests && AnonymousFlood.AuditedRequests == AnonymousFlood.Answered
        && AnonymousFlood.AuditRecords <= AnonymousFlood.AuditRecordsBound;
}

/// <summary>
/// The service's speed and quota enforcement, measured over loopback with a bounded load client. The service runs in this process on a
/// free port with everything on (signed model, keys, validation, micro-batching, the extraction monitor, the durable audit log). Phases:
/// closed-loop throughput (the median of the runs); open-loop latency at 70% of it; a key flooding its quota beside a second key; a keyed
/// client alone, then beside an anonymous flood from another address; finally the audit log is verified against every answered request.
/// </summary>
public static class ServeBench
{
    /// <summary>Where the measured load's connections come from, in turn, as from several clients: one address alone would meet the per-address limit first.</summary>
    public static readonly IReadOnlyList<IPAddress> ClientAddresses = [.. new[] { "127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13" }.Select(IPAddress.Parse)];

    /// <summary>The quota flood's address: another host, so the per-address limit throttles the flooder, not the client beside it.</summary>
    public static readonly IPAddress FloodAddress = IPAddress.Parse("127.0.0.3");

    /// <summary>The anonymous flood's address.</summary>
    public static readonly IPAddress AnonymousAddress = IPAddress.Parse("127.0.0.2");

    public static async Task<ServeBenchResult> RunAsync(ServeBenchOptions options, string workDirectory, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Directory.CreateDirectory(workDirectory);
        var keys = Path.Combine(workDirectory, "api-keys.json");
        var load = ApiKeyStore.Add(keys, "load", [ApiScopes.Predict], false, 1_000_000);
        var rpm = options.FloodRequestsPerMinute;
        var flood = ApiKeyStore.Add(keys, "flood", [ApiScopes.Predict], false, rpm);
        var steady = ApiKeyStore.Add(keys, "steady", [ApiScopes.Predict], false, 6000);
        var service = options.Template with
        {
            ApiKeysPath = keys,
            AuditDirectory = Path.Combine(workDirectory, "audit"),
            AuditKeyPath = Path.Combine(workDirectory, "audit.key"),
            Urls = "http://127.0.0.1:0",
        };
        var app = ServiceHost.Build(service, logging => logging.ClearProviders());
        LoadResult warmup, throughput, latency, floodRun, steadyRun, alone, anonymousRun, keyedRun;
        List<LoadResult> throughputRuns;
        IReadOnlyList<string> flaggedKeys;
        InferencePrecision served;
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var state = app.Services.GetRequiredService<ServiceState>();
            var address = ServiceHost.Address(app);
            progress?.Report("loading the model");
            await state.WaitUntilReadyAsync(TimeSpan.FromMinutes(5), cancellationToken).ConfigureAwait(false);
            served = state.Engine!.Precision;
            var png = options.Digits[0];
            using var client = LoadGenerator.ClientFrom(ClientAddresses, address);
            Task<LoadResult> Run(HttpClient from, LoadOptions load) => LoadGenerator.Run(from, load, cancellationToken);

            progress?.Report("warm-up");
            warmup = await Run(client, new LoadOptions(load, png, Concurrency: 16, DurationSeconds: Math.Min(2, options.Seconds), Bodies: options.Digits)).ConfigureAwait(false);
            throughputRuns = [];
            for (var run = 1; run <= options.Runs; run++)
            {
                progress?.Report($"throughput {run}/{options.Runs}: {options.Concurrency} workers, {options.Seconds} s");
                throughputRuns.Add(await Run(client, new LoadOptions(load, png, Concurrency: options.Concurrency, DurationSeconds: options.Seconds, Bodies: options.Digits)).ConfigureAwait(false));
            }
            throughput = Median(throughputRuns);
            var rate = Math.Max(1, 0.7 * throughput.SucceededPerSecond);
            progress?.Report($"latency: open loop at {rate:F0}/s, {options.Seconds} s");
            latency = await Run(client, new LoadOptions(load, png, DurationSeconds: options.Seconds, RatePerSecond: rate, Bodies: options.Digits)).ConfigureAwait(false);

            var floodSeconds = options.FloodSecondsInEffect;
            progress?.Report($"flood: one key from {FloodAddress} at full speed against {rpm}/min, another at 5/s, {floodSeconds} s");
            using (var flooder = LoadGenerator.ClientFrom(FloodAddress, address))
            {
                var a = Run(flooder, new LoadOptions(flood, png, Concurrency: 16, DurationSeconds: floodSeconds));
                var b = Run(client, new LoadOptions(steady, png, DurationSeconds: floodSeconds, RatePerSecond: 5));
                (floodRun, steadyRun) = (await a.ConfigureAwait(false), await b.ConfigureAwait(false));
            }

            progress?.Report($"keyed client alone: {options.KeyedRate:F0}/s, {options.Seconds} s");
            alone = await Run(client, new LoadOptions(steady, png, DurationSeconds: options.Seconds, RatePerSecond: options.KeyedRate)).ConfigureAwait(false);
            progress?.Report($"anonymous flood from {AnonymousAddress} at full speed beside a keyed client at {options.KeyedRate:F0}/s, {options.AnonymousSeconds} s");
            using (var stranger = LoadGenerator.ClientFrom(AnonymousAddress, address))
            {
                var a = Run(stranger, new LoadOptions(null, png, Concurrency: 64, DurationSeconds: options.AnonymousSeconds));
                var b = Run(client, new LoadOptions(steady, png, DurationSeconds: options.AnonymousSeconds, RatePerSecond: options.KeyedRate));
                (anonymousRun, keyedRun) = (await a.ConfigureAwait(false), await b.ConfigureAwait(false));
            }
            flaggedKeys = state.Extraction?.Statuses().Where(k => k.Flagged).Select(k => k.KeyId).Order(StringComparer.Ordinal).ToList() ?? [];
            await app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await app.DisposeAsync().ConfigureAwait(false);
        }

        progress?.Report("verifying the audit log");
        var burst = Math.Max(1, rpm / 10);
        var allowed = burst + (floodRun.Seconds * rpm / 60.0);
        var accepted = floodRun.StatusCounts.GetValueOrDefault(200);
        var floodResult = new FloodResult(rpm, burst, floodRun.Seconds, floodRun.Sent, accepted, allowed, (accepted - allowed) / allowed,
            steadyRun.Sent, steadyRun.StatusCounts.GetValueOrDefault(200));
        var answered = new[] { warmup, latency, floodRun, steadyRun, alone, keyedRun, anonymousRun }.Concat(throughputRuns).Sum(r => (long)r.Answered);
        var checkpoints = AuditCheckpoint.ReadAll(Path.Combine(service.AuditDirectory, AuditCheckpoint.CheckpointsFile));
        using var auditKey = SigningKey.FromFile(service.AuditKeyPath);
        var verdict = AuditVerifier.Verify(service.AuditDirectory, checkpoints, auditKey.PublicKey);
        var records = AuditVerifier.Records(service.AuditDirectory).Where(r => r.Outcome != AuditOutcome.Recovered).ToList();
        var strangerRecords = records.Where(r => r.Client == AnonymousAddress.ToString()).ToList();
        // Refusals from one address are aggregated per outcome and window: two outcomes (401, 429) over the windows the flood spans.
        var windows = (long)Math.Ceiling(anonymousRun.Seconds / service.Refusals.WindowSeconds) + 1;
        var anonymous = new AnonymousFloodResult(anonymousRun.Seconds, service.RequestsPerSecondPerAddress, anonymousRun.Sent, anonymousRun.Answered, anonymousRun.StatusCounts,
            strangerRecords.Count, 2 * windows, strangerRecords.Sum(r => r.Count ?? 1), options.KeyedRate, alone.P99Milliseconds, keyedRun.P99Milliseconds,
            keyedRun.Sent, keyedRun.StatusCounts.GetValueOrDefault(200));
        var threads = TorchSharp.torch.get_num_threads();
        return new ServeBenchResult(service.ModelDirectory, service.Policy.OnAdversarial, served, service.Extraction.Action, threads,
            [.. throughputRuns.Select(r => Math.Round(r.SucceededPerSecond, 1))], throughput, latency,
            floodResult, anonymous, verdict.Records, records.Sum(r => r.Count ?? 1), answered, verdict.Intact, verdict.Problem,
            options.Digits.Count, flaggedKeys, SecureMnist.Training.MachineInfo.Current(threads));
    }

    private static LoadResult Median(IReadOnlyList<LoadResult> runs) => runs.OrderBy(r => r.SucceededPerSecond).ElementAt(runs.Count / 2);
}
