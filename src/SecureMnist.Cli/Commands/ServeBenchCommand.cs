using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureMnist.Audit;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Server;
using SecureMnist.Serving;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>The service's speed and quota enforcement measured over loopback with a bounded load client.</summary>
internal static class ServeBenchCommand
{
    /// <summary>Where the throughput and latency phases' connections come from, in turn.</summary>
    private static readonly string[] ClientAddresses = ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"];

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
    public sealed record ServeBenchResult(string Model, AdversarialAction OnAdversarial, InferencePrecision Precision, int TorchThreads,
        IReadOnlyList<double> ThroughputRuns, LoadResult Throughput, LoadResult Latency, FloodResult Flood,
        AnonymousFloodResult AnonymousFlood, long AuditRecords, long AuditedRequests, long AnsweredRequests, bool AuditIntact, string? AuditProblem,
        string ExtractionMonitor, int Digits, IReadOnlyList<string> FlaggedKeys, SecureMnist.Training.MachineInfo Machine);

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var duration = new Option<double>("--duration") { Description = "Seconds of each load phase", DefaultValueFactory = _ => 10 };
        var concurrency = new Option<int>("--concurrency") { Description = "Workers of the closed-loop throughput phase", DefaultValueFactory = _ => 64 };
        var runs = new Option<int>("--runs") { Description = "Closed-loop throughput runs (1 to 9); the median is reported and sets the latency phase's rate", DefaultValueFactory = _ => 3 };
        var floodRpm = new Option<int>("--flood-rpm") { Description = "Quota of the flooding key, requests per minute", DefaultValueFactory = _ => 1200 };
        var anonymousSeconds = new Option<double>("--anonymous-flood") { Description = "Seconds of the anonymous flood (no key, from 127.0.0.2, full speed) beside a keyed client", DefaultValueFactory = _ => 20 };
        var keyedRate = new Option<double>("--keyed-rate") { Description = "Requests/s of the keyed client measured before and during the anonymous flood", DefaultValueFactory = _ => 50 };
        var onAdversarial = new Option<AdversarialAction>("--on-adversarial") { Description = "The service's adversarial-input detector: flag, reject or off", DefaultValueFactory = _ => AdversarialAction.Flag };
        var digits = new Option<int>("--digits") { Description = "Distinct test digits the measured load sends in turn (1: the same digit every time; the extraction monitor learns nothing from a repeat)", DefaultValueFactory = _ => 1000 };
        var extraction = new Option<string>("--extraction-monitor") { Description = "The service's extraction monitor, as serve takes it: off, flag, label-only or block; run once with off to see its cost", DefaultValueFactory = _ => "label-only" };
        extraction.AcceptOnlyFromAmong("off", "flag", "label-only", "block");
        var precision = CommonOptions.Precision();
        var json = CommonOptions.Json();
        var command = new Command("serve", """
            Start the service in this process on a free loopback port (signed model, API keys, validation, micro-batching,
            the extraction monitor and the durable audit log all on), then: closed-loop throughput (single-image PNG predictions/s
            of --digits test digits in turn, the median of
            --runs runs); open-loop latency at 70% of that rate (p50/p99 from each request's scheduled time); a flood from one key against its quota while a
            second key sends 5 requests/s; an anonymous flood (no key, from a second loopback address, 64 workers at full
            speed) while a keyed client sends --keyed-rate requests/s, whose p99 is compared with the same client's alone;
            finally the audit log is verified and every answered request must be in it once (its own record, or counted in
            an aggregated one), with the anonymous flood's records within their bound (one per address, outcome and minute).
            The floods come from 127.0.0.3 and 127.0.0.2, as from other hosts, so the per-address limit meets the flooders; the measured
            load comes from 127.0.0.10 to 127.0.0.13 in turn, as from several clients, so that limit does not cap the throughput figure.
            Example: ./securemnist bench serve --model models/baseline
            Example: ./securemnist bench serve --model models/baseline --extraction-monitor off   # the monitor's cost, beside the default
            """)
        { model, publicKey, duration, concurrency, runs, floodRpm, anonymousSeconds, keyedRate, onAdversarial, digits, extraction, precision, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var seconds = result.GetValue(duration);
            var runCount = result.GetValue(runs);
            if (runCount is < 1 or > 9) throw new ArgumentException($"--runs must be 1 to 9 (got {runCount})");
            if (!(seconds is > 0 and <= 3600)) throw new ArgumentException($"--duration must be more than 0 and at most 3600 seconds (got {seconds})");
            var digitCount = result.GetValue(digits);
            if (digitCount is < 1 or > 10_000) throw new ArgumentException($"--digits must be 1 to 10,000 (got {digitCount})");
            var monitorAction = result.GetValue(extraction) switch { "off" => ExtractionAction.Off, "flag" => ExtractionAction.Flag, "block" => ExtractionAction.Block, _ => ExtractionAction.LabelOnly };
            var directory = Path.Combine(Path.GetTempPath(), $"securemnist-bench-serve-{Guid.NewGuid():N}");
            Directory.CreateDirectory(directory);
            try
            {
                var keys = Path.Combine(directory, "api-keys.json");
                var load = ApiKeyStore.Add(keys, "load", [ApiScopes.Predict], false, 1_000_000);
                var rpm = result.GetValue(floodRpm);
                var flood = ApiKeyStore.Add(keys, "flood", [ApiScopes.Predict], false, rpm);
                var steady = ApiKeyStore.Add(keys, "steady", [ApiScopes.Predict], false, 6000);
                var options = new ServiceOptions
                {
                    ModelDirectory = result.GetValue(model)!,
                    PublicKeyPath = result.GetValue(publicKey)!,
                    ApiKeysPath = keys,
                    AuditDirectory = Path.Combine(directory, "audit"),
                    AuditKeyPath = Path.Combine(directory, "audit.key"),
                    DataRoot = result.GetValue(CommonOptions.DataRoot)!,
                    Urls = "http://127.0.0.1:0",
                    Policy = new DecisionPolicy(OnAdversarial: result.GetValue(onAdversarial)),
                    Precision = result.GetValue(precision),
                    Extraction = new ExtractionMonitorOptions(Action: monitorAction),
                };
                var app = ServiceHost.Build(options, logging => logging.ClearProviders());
                await app.StartAsync(cancellationToken);
                var state = app.Services.GetRequiredService<ServiceState>();
                var address = ServiceHost.Address(app);
                await state.WaitUntilReadyAsync(TimeSpan.FromMinutes(5), cancellationToken);
                var test = new DatasetStore(options.DataRoot).Load("mnist").Test;
                var png = DigitPng(test.Image(0));
                IReadOnlyList<byte[]> varied = [.. Enumerable.Range(0, digitCount).Select(i => DigitPng(test.Image(i)))];
                // The measured load comes from four client addresses, as many clients would: one address alone would meet the
                // service's per-address limit (1,000/s by default) before the service's own capacity.
                using var client = LoadGenerator.ClientFrom([.. ClientAddresses.Select(System.Net.IPAddress.Parse)], address);

                LoadResult Phase(string title, Func<Task<LoadResult>> run) => Ui.Err.Status().Start(title, _ => run().GetAwaiter().GetResult());
                var warmup = Phase("warm-up", () => LoadGenerator.Run(client, new LoadOptions(load, png, Concurrency: 16, DurationSeconds: 2, Bodies: varied), cancellationToken));
                var throughputRuns = Enumerable.Range(1, runCount).Select(run => Phase($"throughput {run}/{runCount}: {result.GetValue(concurrency)} workers, {seconds} s", () =>
                    LoadGenerator.Run(client, new LoadOptions(load, png, Concurrency: result.GetValue(concurrency), DurationSeconds: seconds, Bodies: varied), cancellationToken))).ToList();
                var throughput = throughputRuns.OrderBy(r => r.SucceededPerSecond).ElementAt(runCount / 2);
                var rate = 0.7 * throughput.SucceededPerSecond;
                var latency = Phase($"latency: open loop at {rate:F0}/s, {seconds} s", () =>
                    LoadGenerator.Run(client, new LoadOptions(load, png, DurationSeconds: seconds, RatePerSecond: rate, Bodies: varied), cancellationToken));
                var floodSeconds = Math.Max(20, 2 * seconds);
                // Each flood comes from an address of its own, as it would from another host: the per-address limit then
                // throttles the flooder, not the well-behaved client beside it.
                using var flooder = LoadGenerator.ClientFrom(System.Net.IPAddress.Parse("127.0.0.3"), address);
                var (floodRun, steadyRun) = Ui.Err.Status().Start($"flood: one key from 127.0.0.3 at full speed against {rpm}/min, another at 5/s, {floodSeconds} s", _ =>
                {
                    var a = LoadGenerator.Run(flooder, new LoadOptions(flood, png, Concurrency: 16, DurationSeconds: floodSeconds), cancellationToken);
                    var b = LoadGenerator.Run(client, new LoadOptions(steady, png, DurationSeconds: floodSeconds, RatePerSecond: 5), cancellationToken);
                    return (a.GetAwaiter().GetResult(), b.GetAwaiter().GetResult());
                });
                var anonymousFor = result.GetValue(anonymousSeconds);
                var keyed = result.GetValue(keyedRate);
                var alone = Phase($"keyed client alone: {keyed:F0}/s, {seconds} s", () =>
                    LoadGenerator.Run(client, new LoadOptions(steady, png, DurationSeconds: seconds, RatePerSecond: keyed), cancellationToken));
                using var stranger = LoadGenerator.ClientFrom(System.Net.IPAddress.Parse("127.0.0.2"), address);
                var (anonymousRun, keyedRun) = Ui.Err.Status().Start($"anonymous flood from 127.0.0.2 at full speed beside a keyed client at {keyed:F0}/s, {anonymousFor} s", _ =>
                {
                    var a = LoadGenerator.Run(stranger, new LoadOptions(null, png, Concurrency: 64, DurationSeconds: anonymousFor), cancellationToken);
                    var b = LoadGenerator.Run(client, new LoadOptions(steady, png, DurationSeconds: anonymousFor, RatePerSecond: keyed), cancellationToken);
                    return (a.GetAwaiter().GetResult(), b.GetAwaiter().GetResult());
                });
                var flaggedKeys = state.Extraction?.Statuses().Where(k => k.Flagged).Select(k => k.KeyId).Order(StringComparer.Ordinal).ToList() ?? [];
                await app.StopAsync(cancellationToken);
                await app.DisposeAsync();

                var burst = Math.Max(1, rpm / 10);
                var allowed = burst + (floodRun.Seconds * rpm / 60.0);
                var accepted = floodRun.StatusCounts.GetValueOrDefault(200);
                var floodResult = new FloodResult(rpm, burst, floodRun.Seconds, floodRun.Sent, accepted, allowed, (accepted - allowed) / allowed,
                    steadyRun.Sent, steadyRun.StatusCounts.GetValueOrDefault(200));
                var answered = new[] { warmup, latency, floodRun, steadyRun, alone, keyedRun }.Concat(throughputRuns).Sum(r => (long)r.Answered);
                var checkpoints = AuditCheckpoint.ReadAll(Path.Combine(options.AuditDirectory, AuditCheckpoint.CheckpointsFile));
                using var auditKey = SigningKey.FromFile(options.AuditKeyPath);
                var verdict = AuditVerifier.Verify(options.AuditDirectory, checkpoints, auditKey.PublicKey);
                var records = AuditVerifier.Records(options.AuditDirectory).Where(r => r.Outcome != AuditOutcome.Recovered).ToList();
                var strangerRecords = records.Where(r => r.Client == "127.0.0.2").ToList();
                var windows = (long)Math.Ceiling(anonymousRun.Seconds / options.Refusals.WindowSeconds) + 1;
                var anonymous = new AnonymousFloodResult(anonymousRun.Seconds, options.RequestsPerSecondPerAddress, anonymousRun.Sent, anonymousRun.Answered, anonymousRun.StatusCounts,
                    strangerRecords.Count, 2 * windows, strangerRecords.Sum(r => r.Count ?? 1), keyed, alone.P99Milliseconds, keyedRun.P99Milliseconds,
                    keyedRun.Sent, keyedRun.StatusCounts.GetValueOrDefault(200));
                // Every answered request is in the log once: as its own record, or counted in an aggregated one.
                var audited = records.Sum(r => r.Count ?? 1);
                var total = answered + anonymousRun.Answered;
                var bench = new ServeBenchResult(options.ModelDirectory, options.Policy.OnAdversarial, options.Precision, TorchSharp.torch.get_num_threads(),
                    [.. throughputRuns.Select(r => Math.Round(r.SucceededPerSecond, 1))], throughput, latency,
                    floodResult, anonymous, verdict.Records, audited, total, verdict.Intact, verdict.Problem, result.GetValue(extraction)!, digitCount, flaggedKeys,
                    SecureMnist.Training.MachineInfo.Current(TorchSharp.torch.get_num_threads()));
                var consistent = verdict.Intact && audited == total && anonymous.AuditedRequests == anonymous.Answered && anonymous.AuditRecords <= anonymous.AuditRecordsBound;
                if (result.GetValue(json))
                {
                    Ui.WriteJson(bench);
                    return consistent ? 0 : 1;
                }
                var table = new Table().AddColumns("measure", "value");
                table.AddRow("set-up", $"detector {options.Policy.OnAdversarial.ToString().ToLowerInvariant()}, extraction monitor {result.GetValue(extraction)}, {digitCount} distinct digits, {options.Precision.ToString().ToLowerInvariant()}, {TorchSharp.torch.get_num_threads()} libtorch thread(s), {Environment.ProcessorCount} cores");
                table.AddRow("machine", $"{bench.Machine.Cpu}; vector extensions {string.Join(" ", bench.Machine.VectorExtensions ?? [])} (compare figures only between hosts with the same set)");
                table.AddRow("throughput (closed loop)", $"{throughput.SucceededPerSecond:F0} predictions/s, median of {runCount} ({string.Join(", ", throughputRuns.Select(r => r.SucceededPerSecond.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}); that run: {throughput.Answered} answered in {throughput.Seconds:F1} s, p50 {throughput.P50Milliseconds:F1} ms, p99 {throughput.P99Milliseconds:F1} ms");
                table.AddRow("latency at 70% of it", $"{latency.TargetRate:F0}/s offered, {latency.SucceededPerSecond:F0}/s answered OK: p50 {latency.P50Milliseconds:F1} ms, p99 {latency.P99Milliseconds:F1} ms, max {latency.MaxMilliseconds:F1} ms");
                table.AddRow("flood key", $"{accepted} accepted of {floodRun.Sent} sent; quota {allowed:F0} ({burst} burst + {rpm}/min for {floodRun.Seconds:F1} s): {100 * floodResult.Deviation:+0.0;-0.0}%");
                table.AddRow("other key during the flood", $"{steadyRun.StatusCounts.GetValueOrDefault(200)}/{steadyRun.Sent} succeeded");
                var codes = string.Join(", ", anonymous.StatusCounts.OrderBy(c => c.Key).Select(c => $"{c.Value} x {c.Key}"));
                table.AddRow("anonymous flood (127.0.0.2)", $"{anonymous.Answered} answered in {anonymous.Seconds:F1} s ({codes}); per-address limit {anonymous.AddressRate}/s");
                table.AddRow("  its audit records", $"{anonymous.AuditRecords} (bound {anonymous.AuditRecordsBound}: 2 outcomes x {windows} windows), counting {anonymous.AuditedRequests} requests");
                table.AddRow("  keyed client beside it", $"{anonymous.KeyedSucceeded}/{anonymous.KeyedSent} succeeded at {keyed:F0}/s; p99 {anonymous.KeyedP99DuringFlood:F1} ms, alone {anonymous.KeyedP99Unloaded:F1} ms ({anonymous.KeyedP99DuringFlood / Math.Max(1e-9, anonymous.KeyedP99Unloaded):F2}x)");
                table.AddRow("keys the extraction monitor flagged", flaggedKeys.Count == 0 ? "none" : string.Join(", ", flaggedKeys));
                table.AddRow("audit log", $"{(verdict.Intact ? "intact" : "TAMPERED: " + verdict.Problem)}; {verdict.Records} records account for {audited} requests; {total} were answered");
                Ui.Out.Write(table);
                return consistent ? 0 : 1;
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        });
        return command;
    }

    internal static byte[] DigitPng(ReadOnlySpan<byte> image)
    {
        using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(28, 28, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque));
        image.CopyTo(bitmap.GetPixelSpan());
        using var encoded = SkiaSharp.SKImage.FromBitmap(bitmap).Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }
}
