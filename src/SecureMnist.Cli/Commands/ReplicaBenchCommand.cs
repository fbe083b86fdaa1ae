using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Server;
using SecureMnist.Serving;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary><c>bench replicas</c>: the scale-out guarantees of <c>serve --redis</c>, as figures.</summary>
internal static class ReplicaBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var replicas = new Option<int>("--replicas") { Description = "Replicas behind the round-robin client (2 to 8)", DefaultValueFactory = _ => 3 };
        var duration = new Option<double>("--duration") { Description = "Seconds of each load phase (own quotas, then shared)", DefaultValueFactory = _ => 10 };
        var quota = new Option<int>("--quota") { Description = "The flooding key's quota, requests per minute (its burst is a tenth of it)", DefaultValueFactory = _ => 600 };
        var redisServer = new Option<string>("--redis-server") { Description = "The redis-server executable to start on a free loopback port", DefaultValueFactory = _ => "redis-server" };
        var json = CommonOptions.Json();
        var command = new Command("replicas", """
            Replicas behind a round-robin balancer, measured. Starts --replicas services in this process (each with its own
            engine, limiter and audit log) and floods one key (--quota per minute) through all of them from 4 workers each,
            while a second key sends 6 requests/s: first with each replica keeping its own quotas (the key gets about one
            quota per replica), then sharing them through a real redis-server (one quota across all, within 5%). Then Redis
            is killed: replica r1 and the others fail closed (503), the last fails open to its own quotas (200). Redis is
            restarted and the time until r1 serves again is measured. Finally every replica's hash-chained audit log is verified.
            Exit code: 0 when the shared quota is within 5%, the other key was always served, the outage went as configured,
            r1 recovered and every log verifies; 1 otherwise.
            Needs redis-server (apt-get install redis-server; ./run-tests installs it).
            Example: ./securemnist bench replicas --model models/baseline
            """)
        { model, publicKey, replicas, duration, quota, redisServer, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var directory = Path.Combine(Path.GetTempPath(), $"securemnist-bench-replicas-{Guid.NewGuid():N}");
            Directory.CreateDirectory(directory);
            try
            {
                var keys = Path.Combine(directory, "api-keys.json");
                var rpm = result.GetValue(quota);
                if (rpm is < 10 or > 1_000_000) throw new ArgumentException($"--quota must be 10 to 1,000,000 requests per minute (got {rpm})");
                var flood = ApiKeyStore.Add(keys, "flood", [ApiScopes.Predict], false, rpm);
                var other = ApiKeyStore.Add(keys, "other", [ApiScopes.Predict], false, 6000);
                var dataRoot = result.GetValue(CommonOptions.DataRoot)!;
                var template = new ServiceOptions
                {
                    ModelDirectory = result.GetValue(model)!,
                    PublicKeyPath = result.GetValue(publicKey)!,
                    ApiKeysPath = keys,
                    AuditDirectory = Path.Combine(directory, "audit"),
                    AuditKeyPath = Path.Combine(directory, "audit.key"),
                    DataRoot = dataRoot,
                };
                var png = DigitImage.Png(new DatasetStore(dataRoot).Load("mnist").Test.Image(0));
                var options = new ReplicaBenchOptions(template, flood, rpm, other, png, result.GetValue(replicas), result.GetValue(duration), RedisServer: result.GetValue(redisServer)!);
                try
                {
                    options.Validate();
                }
                catch (ArgumentOutOfRangeException e)
                {
                    throw new ArgumentException(e.ParamName switch
                    {
                        nameof(ReplicaBenchOptions.Replicas) => $"--replicas must be 2 to 8 (got {options.Replicas})",
                        nameof(ReplicaBenchOptions.Seconds) => $"--duration must be more than 0 and at most 600 seconds (got {options.Seconds})",
                        _ => e.Message,
                    }, e);
                }
                var bench = await Ui.Err.Status().StartAsync("starting replicas", status =>
                    ReplicaBench.RunAsync(options, directory, new Progress<string>(message => status.Status(message)), cancellationToken));
                if (result.GetValue(json))
                {
                    Ui.WriteJson(new { bench.Passed, bench.Replicas, bench.QuotaPerMinute, bench.Local, bench.Shared, bench.Outage, bench.RecoveredAfterSeconds, bench.Logs });
                    return bench.Passed ? 0 : 1;
                }
                static string Phase(ReplicaLoadPhase p) =>
                    $"{p.Admitted} admitted of {p.Sent} ({string.Join(" + ", p.AdmittedPerReplica)}) in {p.Seconds:F1} s = {p.Ratio:F2} x one quota ({p.Allowance:F0}); other key {p.OtherSucceeded}/{p.OtherSent} served";
                var table = new Table().AddColumns("measure", "value");
                table.AddRow("own quotas (no Redis)", Phase(bench.Local));
                table.AddRow("shared through Redis", Phase(bench.Shared) + (Math.Abs(bench.Shared.Ratio - 1) <= 0.05 ? " [green](within 5%)[/]" : " [red](off by more than 5%)[/]"));
                foreach (var o in bench.Outage)
                    table.AddRow($"Redis killed: {o.ReplicaId} ({o.Mode.ToString().ToLowerInvariant()})", string.Join(", ", o.StatusCounts.OrderBy(c => c.Key).Select(c => $"{c.Value} x {c.Key}")));
                table.AddRow("Redis restarted", bench.RecoveredAfterSeconds is { } s ? $"r1 served again after {s:F1} s" : "[red]r1 did not serve again[/]");
                foreach (var log in bench.Logs)
                    table.AddRow($"audit log {log.ReplicaId}", log.Intact ? $"intact: {log.Records} records, {log.CheckpointsChecked} signed checkpoint(s) matched" : $"[red]TAMPERED[/]: {Markup.Escape(log.Problem ?? "")}");
                Ui.Out.Write(table);
                return bench.Passed ? 0 : 1;
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        });
        return command;
    }
}
