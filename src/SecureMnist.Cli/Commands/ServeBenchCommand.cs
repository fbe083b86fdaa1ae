using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Server;
using SecureMnist.Serving;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>The service's speed and quota enforcement measured over loopback with a bounded load client.</summary>
internal static class ServeBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var duration = new Option<double>("--duration") { Description = "Seconds of each load phase", DefaultValueFactory = _ => 10 };
        var concurrency = new Option<int>("--concurrency") { Description = "Workers of the closed-loop throughput phase", DefaultValueFactory = _ => 64 };
        var runs = new Option<int>("--runs") { Description = "Closed-loop throughput runs (1 to 9); the median is reported and sets the latency phase's rate", DefaultValueFactory = _ => 3 };
        var floodRpm = new Option<int>("--flood-rpm") { Description = "Quota of the flooding key, requests per minute", DefaultValueFactory = _ => 1200 };
        var floodSeconds = new Option<double?>("--flood-seconds") { Description = "Seconds of the quota flood (default: the larger of 20 and twice --duration, so the refill, not the burst, sets the allowance)" };
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
        { model, publicKey, duration, concurrency, runs, floodRpm, floodSeconds, anonymousSeconds, keyedRate, onAdversarial, digits, extraction, precision, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var digitCount = result.GetValue(digits);
            if (digitCount is < 1 or > 10_000) throw new ArgumentException($"--digits must be 1 to 10,000 (got {digitCount})");
            var monitor = result.GetValue(extraction) switch { "off" => ExtractionAction.Off, "flag" => ExtractionAction.Flag, "block" => ExtractionAction.Block, _ => ExtractionAction.LabelOnly };
            var dataRoot = result.GetValue(CommonOptions.DataRoot)!;
            var test = new DatasetStore(dataRoot).Load("mnist").Test;
            var template = new ServiceOptions
            {
                ModelDirectory = result.GetValue(model)!,
                PublicKeyPath = result.GetValue(publicKey)!,
                DataRoot = dataRoot,
                // The bench provisions its own keys and audit log in its work folder, and listens on a free loopback port.
                ApiKeysPath = "",
                AuditDirectory = "",
                AuditKeyPath = "",
                Policy = new DecisionPolicy(OnAdversarial: result.GetValue(onAdversarial)),
                Precision = result.GetValue(precision),
                Extraction = new ExtractionMonitorOptions(Action: monitor),
            };
            var options = new ServeBenchOptions(template, [.. Enumerable.Range(0, digitCount).Select(i => DigitImage.Png(test.Image(i)))], result.GetValue(duration),
                result.GetValue(concurrency), result.GetValue(runs), result.GetValue(floodRpm), result.GetValue(floodSeconds), result.GetValue(anonymousSeconds), result.GetValue(keyedRate));
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new ArgumentException(e.ParamName switch
                {
                    nameof(ServeBenchOptions.Seconds) => $"--duration must be more than 0 and at most 3600 seconds (got {options.Seconds})",
                    nameof(ServeBenchOptions.Runs) => $"--runs must be 1 to 9 (got {options.Runs})",
                    nameof(ServeBenchOptions.Concurrency) => $"--concurrency must be 1 to 4,096 (got {options.Concurrency})",
                    nameof(ServeBenchOptions.FloodRequestsPerMinute) => $"--flood-rpm must be 10 to 1,000,000 (got {options.FloodRequestsPerMinute})",
                    nameof(ServeBenchOptions.FloodSeconds) => $"--flood-seconds must be more than 0 and at most 3600 (got {options.FloodSeconds})",
                    nameof(ServeBenchOptions.AnonymousSeconds) => $"--anonymous-flood must be more than 0 and at most 3600 seconds (got {options.AnonymousSeconds})",
                    nameof(ServeBenchOptions.KeyedRate) => $"--keyed-rate must be more than 0 and at most 10,000 requests/s (got {options.KeyedRate})",
                    _ => e.Message,
                }, e);
            }
            var directory = Path.Combine(Path.GetTempPath(), $"securemnist-bench-serve-{Guid.NewGuid():N}");
            try
            {
                var bench = await Ui.Err.Status().StartAsync("starting the service", status =>
                    ServeBench.RunAsync(options, directory, new Progress<string>(message => status.Status(message)), cancellationToken));
                if (result.GetValue(json))
                {
                    Ui.WriteJson(bench);
                    return bench.Consistent ? 0 : 1;
                }
                var (throughput, latency, flood, anonymous) = (bench.Throughput, bench.Latency, bench.Flood, bench.AnonymousFlood);
                var table = new Table().AddColumns("measure", "value");
                table.AddRow("set-up", $"detector {bench.OnAdversarial.ToString().ToLowerInvariant()}, extraction monitor {result.GetValue(extraction)}, {bench.Digits} distinct digits, {bench.Precision.ToString().ToLowerInvariant()}, {bench.TorchThreads} libtorch thread(s), {Environment.ProcessorCount} cores");
                table.AddRow("machine", Markup.Escape($"{bench.Machine.Cpu}; vector extensions {string.Join(" ", bench.Machine.VectorExtensions ?? [])} (compare figures only between hosts with the same set)"));
                table.AddRow("throughput (closed loop)", $"{throughput.SucceededPerSecond:F0} predictions/s, median of {bench.ThroughputRuns.Count} ({string.Join(", ", bench.ThroughputRuns.Select(r => r.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}); that run: {throughput.Answered} answered in {throughput.Seconds:F1} s, p50 {throughput.P50Milliseconds:F1} ms, p99 {throughput.P99Milliseconds:F1} ms");
                table.AddRow("latency at 70% of it", $"{latency.TargetRate:F0}/s offered, {latency.SucceededPerSecond:F0}/s answered OK: p50 {latency.P50Milliseconds:F1} ms, p99 {latency.P99Milliseconds:F1} ms, max {latency.MaxMilliseconds:F1} ms");
                table.AddRow($"flood key ({ServeBench.FloodAddress})", $"{flood.FloodAccepted} accepted of {flood.FloodSent} sent; quota {flood.FloodAllowed:F0} ({flood.Burst} burst + {flood.RequestsPerMinute}/min for {flood.Seconds:F1} s): {100 * flood.Deviation:+0.0;-0.0}%");
                table.AddRow("other key during the flood", $"{flood.SteadySucceeded}/{flood.SteadySent} succeeded");
                var codes = string.Join(", ", anonymous.StatusCounts.OrderBy(c => c.Key).Select(c => $"{c.Value} x {c.Key}"));
                table.AddRow($"anonymous flood ({ServeBench.AnonymousAddress})", $"{anonymous.Answered} answered in {anonymous.Seconds:F1} s ({codes}); per-address limit {anonymous.AddressRate}/s");
                table.AddRow("  its audit records", $"{anonymous.AuditRecords} (bound {anonymous.AuditRecordsBound}: 2 outcomes x {anonymous.AuditRecordsBound / 2} windows), counting {anonymous.AuditedRequests} requests");
                table.AddRow("  keyed client beside it", $"{anonymous.KeyedSucceeded}/{anonymous.KeyedSent} succeeded at {anonymous.KeyedRate:F0}/s; p99 {anonymous.KeyedP99DuringFlood:F1} ms, alone {anonymous.KeyedP99Unloaded:F1} ms ({anonymous.KeyedP99DuringFlood / Math.Max(1e-9, anonymous.KeyedP99Unloaded):F2}x)");
                table.AddRow("keys the extraction monitor flagged", bench.FlaggedKeys.Count == 0 ? "none" : string.Join(", ", bench.FlaggedKeys));
                table.AddRow("audit log", Markup.Escape($"{(bench.AuditIntact ? "intact" : "TAMPERED: " + bench.AuditProblem)}; {bench.AuditRecords} records account for {bench.AuditedRequests} requests; {bench.AnsweredRequests} were answered"));
                Ui.Out.Write(table);
                return bench.Consistent ? 0 : 1;
            }
            finally
            {
                if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
            }
        });
        return command;
    }
}
