using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>What <see cref="ReplicaBench"/> runs: the replicas' common settings and the load against them.</summary>
/// <param name="Template">Every replica's settings (model, keys file, data root, ...); the bench sets the URLs, Redis, replica ids and the audit folder.</param>
/// <param name="QuotaKey">A key of <paramref name="QuotaPerMinute"/> requests per minute in the template's keys file: the one that floods.</param>
/// <param name="OtherKey">A key with room to spare: it keeps sending a few requests per second beside the flood.</param>
public sealed record ReplicaBenchOptions(ServiceOptions Template, string QuotaKey, int QuotaPerMinute, string OtherKey, byte[] Png,
    int Replicas = 3, double Seconds = 10, int WorkersPerReplica = 4, double OtherKeyRate = 6, double RecoverySeconds = 30, string RedisServer = "redis-server")
{
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Template);
        ArgumentException.ThrowIfNullOrEmpty(QuotaKey);
        ArgumentException.ThrowIfNullOrEmpty(OtherKey);
        if (Replicas is < 2 or > 8) throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, "replicas must be 2 to 8");
        if (Seconds is <= 0 or > 600) throw new ArgumentOutOfRangeException(nameof(Seconds), Seconds, "the load phase must last more than 0 and at most 600 seconds");
        if (QuotaPerMinute is < 10 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(QuotaPerMinute), QuotaPerMinute, "the quota must be 10 to 1,000,000 requests per minute");
        if (WorkersPerReplica is < 1 or > 256) throw new ArgumentOutOfRangeException(nameof(WorkersPerReplica), WorkersPerReplica, "workers per replica must be 1 to 256");
        if (RecoverySeconds is <= 0 or > 600) throw new ArgumentOutOfRangeException(nameof(RecoverySeconds), RecoverySeconds, "the recovery wait must be more than 0 and at most 600 seconds");
    }

    /// <summary>What one token bucket of the key grants over <paramref name="seconds"/>: its burst (a tenth of a minute's quota), then the refill.</summary>
    public double Allowance(double seconds) => Math.Max(1, QuotaPerMinute / 10) + seconds * QuotaPerMinute / 60.0;
}

/// <summary>One load phase over all replicas: the flooding key's answers against one bucket's allowance, and the other key's.</summary>
/// <param name="Ratio">Admitted over one replica's allowance: about 1 when the replicas share the quota, about the replica count when each keeps its own.</param>
public sealed record ReplicaLoadPhase(bool SharedQuota, double Seconds, int Sent, int Admitted, int Limited, double Allowance, double Ratio,
    IReadOnlyList<int> AdmittedPerReplica, int OtherSent, int OtherSucceeded, IReadOnlyDictionary<int, int> OtherStatusCounts);

/// <summary>What each replica answered right after Redis was killed, by its failure mode.</summary>
public sealed record ReplicaOutage(string ReplicaId, RedisFailureMode Mode, IReadOnlyDictionary<int, int> StatusCounts);

/// <summary>One replica's audit log after the run.</summary>
public sealed record ReplicaLog(string ReplicaId, bool Intact, long Records, int CheckpointsChecked, string? Problem);

public sealed record ReplicaBenchResult(int Replicas, int QuotaPerMinute, ReplicaLoadPhase Local, ReplicaLoadPhase Shared,
    IReadOnlyList<ReplicaOutage> Outage, double? RecoveredAfterSeconds, IReadOnlyList<ReplicaLog> Logs)
{
    /// <summary>The shared phase admitted one allowance within 5%, the outage went as configured, the service recovered and every log verifies.</summary>
    public bool Passed =>
        Math.Abs(Shared.Ratio - 1) <= 0.05 && Shared.OtherSucceeded == Shared.OtherSent
        && Outage.All(o => o.Mode == RedisFailureMode.Closed ? o.StatusCounts.Keys.All(s => s == 503) : o.StatusCounts.Keys.All(s => s == 200))
        && RecoveredAfterSeconds is not null && Logs.All(l => l.Intact);
}

/// <summary>
/// Replicas behind a round-robin balancer, measured: N services in this process (each with its own engine, limiter and audit
/// log, as N processes would have), first keeping quotas to themselves, then sharing them through a real redis-server; then
/// Redis is killed mid-run (replica 1 and the others fail closed, the last fails open), restarted, and every replica's log is verified.
/// </summary>
public static class ReplicaBench
{
    public static async Task<ReplicaBenchResult> RunAsync(ReplicaBenchOptions options, string workDirectory, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Directory.CreateDirectory(workDirectory);
        var auditKey = Path.Combine(workDirectory, "audit.key");
        using (var key = SigningKey.Generate()) key.Save(auditKey); // provisioned once and shared, as a deployment would mount it

        progress?.Report($"{options.Replicas} replicas keeping their own quotas: {options.Seconds} s of load");
        ReplicaLoadPhase local;
        await using (var replicas = await Replicas.Start(options, Path.Combine(workDirectory, "audit-local"), auditKey, redis: null, cancellationToken).ConfigureAwait(false))
            local = await Load(replicas, options, sharedQuota: false, cancellationToken).ConfigureAwait(false);

        var sharedAudit = Path.Combine(workDirectory, "audit-shared");
        using var redis = new RedisServerProcess(options.RedisServer, FreePort());
        ReplicaLoadPhase shared;
        var outage = new List<ReplicaOutage>();
        double? recovered = null;
        await using (var replicas = await Replicas.Start(options, sharedAudit, auditKey, redis.Address, cancellationToken).ConfigureAwait(false))
        {
            progress?.Report($"{options.Replicas} replicas sharing quotas through Redis at {redis.Address}: {options.Seconds} s of load");
            shared = await Load(replicas, options, sharedQuota: true, cancellationToken).ConfigureAwait(false);

            progress?.Report("Redis killed: what each replica answers");
            redis.Kill();
            for (var i = 0; i < replicas.Count; i++)
            {
                var counts = new Dictionary<int, int>();
                for (var k = 0; k < 10; k++)
                {
                    var status = await Send(replicas.Clients[i], options.OtherKey, options.Png, cancellationToken).ConfigureAwait(false);
                    counts[status] = counts.GetValueOrDefault(status) + 1;
                }
                outage.Add(new(replicas.Ids[i], replicas.Modes[i], counts));
            }

            progress?.Report("Redis restarted: waiting for replica 1 to serve again");
            redis.Start();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < options.RecoverySeconds)
            {
                if (await Send(replicas.Clients[0], options.OtherKey, options.Png, cancellationToken).ConfigureAwait(false) == 200)
                {
                    recovered = clock.Elapsed.TotalSeconds;
                    break;
                }
                await Task.Delay(250, cancellationToken).ConfigureAwait(false);
            }
        }

        using var publicKey = SigningKey.FromFile(auditKey);
        var logs = AuditVerifier.Logs(sharedAudit).Select(log =>
        {
            var checkpointsPath = Path.Combine(log, AuditCheckpoint.CheckpointsFile);
            var checkpoints = File.Exists(checkpointsPath) ? AuditCheckpoint.ReadAll(checkpointsPath) : [];
            var verdict = AuditVerifier.Verify(log, checkpoints, publicKey.PublicKey);
            return new ReplicaLog(Path.GetFileName(log), verdict.Intact, verdict.Records, verdict.CheckpointsChecked, verdict.Problem);
        }).ToList();
        return new ReplicaBenchResult(options.Replicas, options.QuotaPerMinute, local, shared, outage, recovered, logs);
    }

    /// <summary>The quota key floods every replica from a few workers each; the other key sends at a fixed rate round-robin.</summary>
    private static async Task<ReplicaLoadPhase> Load(Replicas replicas, ReplicaBenchOptions options, bool sharedQuota, CancellationToken cancellationToken)
    {
        var floods = replicas.Clients.Select(client => LoadGenerator.Run(client,
            new LoadOptions(options.QuotaKey, options.Png, Concurrency: options.WorkersPerReplica, DurationSeconds: options.Seconds), cancellationToken)).ToList();
        var other = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        var sent = 0;
        while (clock.Elapsed.TotalSeconds < options.Seconds)
        {
            var status = await Send(replicas.Clients[sent % replicas.Count], options.OtherKey, options.Png, cancellationToken).ConfigureAwait(false);
            other[status] = other.GetValueOrDefault(status) + 1;
            sent++;
            var due = TimeSpan.FromSeconds(sent / options.OtherKeyRate) - clock.Elapsed;
            if (due > TimeSpan.Zero) await Task.Delay(due, cancellationToken).ConfigureAwait(false);
        }
        var results = await Task.WhenAll(floods).ConfigureAwait(false);
        var admittedPer = results.Select(r => r.StatusCounts.GetValueOrDefault(200)).ToList();
        var admitted = admittedPer.Sum();
        var seconds = results.Max(r => r.Seconds);
        var allowance = options.Allowance(seconds);
        return new ReplicaLoadPhase(sharedQuota, seconds, results.Sum(r => r.Sent), admitted, results.Sum(r => r.StatusCounts.GetValueOrDefault(429)),
            allowance, admitted / allowance, admittedPer, sent, other.GetValueOrDefault(200), other);
    }

    private static async Task<int> Send(HttpClient client, string secret, byte[] png, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(png);
        content.Headers.ContentType = new("image/png");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = content };
        request.Headers.Authorization = new("Bearer", secret);
        using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return (int)response.StatusCode;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The running replicas and a client for each; disposing stops them (their audit logs close with a final checkpoint).</summary>
    private sealed class Replicas : IAsyncDisposable
    {
        private readonly List<WebApplication> apps = [];
        public List<HttpClient> Clients { get; } = [];
        public List<string> Ids { get; } = [];
        public List<RedisFailureMode> Modes { get; } = [];
        public int Count => Clients.Count;

        public static async Task<Replicas> Start(ReplicaBenchOptions options, string auditDirectory, string auditKey, string? redis, CancellationToken cancellationToken)
        {
            var replicas = new Replicas();
            try
            {
                for (var i = 0; i < options.Replicas; i++)
                {
                    var id = $"r{i + 1}";
                    var mode = i == options.Replicas - 1 ? RedisFailureMode.Open : RedisFailureMode.Closed;
                    var app = ServiceHost.Build(options.Template with
                    {
                        Urls = "http://127.0.0.1:0",
                        MetricsUrls = null,
                        Redis = redis,
                        RedisFailure = mode,
                        ReplicaId = id,
                        AuditDirectory = auditDirectory,
                        AuditKeyPath = auditKey,
                        // Each replica is one client address's only server here: the per-address limit would cap the flood, not the key's quota.
                        RequestsPerSecondPerAddress = 0,
                    }, logging => logging.ClearProviders());
                    replicas.apps.Add(app);
                    await app.StartAsync(cancellationToken).ConfigureAwait(false);
                    await app.Services.GetRequiredService<ServiceState>().WaitUntilReadyAsync(TimeSpan.FromMinutes(5), cancellationToken).ConfigureAwait(false);
                    replicas.Clients.Add(new HttpClient { BaseAddress = ServiceHost.Address(app), Timeout = TimeSpan.FromSeconds(30) });
                    replicas.Ids.Add(id);
                    replicas.Modes.Add(mode);
                }
                return replicas;
            }
            catch
            {
                await replicas.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var client in Clients) client.Dispose();
            foreach (var app in apps)
            {
                await app.StopAsync().ConfigureAwait(false);
                await app.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}

/// <summary>A throw-away redis-server on a loopback port, without persistence; <see cref="Kill"/> is SIGKILL, as a crashed node.</summary>
public sealed class RedisServerProcess : IDisposable
{
    private readonly string executable;
    private Process? process;

    public RedisServerProcess(string executable, int port)
    {
        this.executable = executable;
        Port = port;
        Start();
    }

    public int Port { get; }
    public string Address => $"127.0.0.1:{Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    public void Start()
    {
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
            start.ArgumentList.Add(argument);
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{executable} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot start {executable} ({e.Message}); install Redis, e.g. apt-get install redis-server", e);
        }
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !process.HasExited)
            {
                Thread.Sleep(50);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException($"{executable} did not listen on port {Port} within 20 s (exited: {process.HasExited})");
            }
        }
    }

    public void Kill()
    {
        if (process is { HasExited: false }) process.Kill();
        process?.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        process?.Dispose();
    }
}
