using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using SecureMnist.Server;
using SecureMnist.Serving;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.Service;

/// <summary>
/// Replicas behind a round-robin balancer (the test client): three real <c>serve</c> processes sharing quotas through a real
/// redis-server, against three replicas that keep their own.
/// </summary>
[Collection(ServedModelCollection.Name)]
public sealed class ScaleOutTests(ServedModel model)
{
    private const int QuotaPerMinute = 120; // a burst of 12, then one request per 500 ms
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    /// <summary>What one token bucket of the key grants over <paramref name="seconds"/>: the burst, then one request per refill period.</summary>
    private static double Allowance(double seconds) => QuotaPerMinute / 10 + Math.Floor(seconds * QuotaPerMinute / 60.0);

    /// <summary>An API key file with the fixture's keys plus a "quota" key of <see cref="QuotaPerMinute"/>; returns its path and the new key.</summary>
    private (string Path, string Secret) KeysWithQuotaKey()
    {
        var path = Path.Combine(model.Directory, "keys-" + Guid.NewGuid().ToString("N") + ".json");
        File.Copy(model.ApiKeysPath, path);
        return (path, ApiKeyStore.Add(path, "quota", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: QuotaPerMinute));
    }

    private static HttpRequestMessage Predict(string secret, string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return request;
    }

    /// <summary>
    /// Sends the key's requests round-robin over the replicas from four workers for <see cref="Window"/>, faster than its quota, while
    /// a fifth worker sends another key's requests at a modest pace; counts the answers by status.
    /// </summary>
    private static async Task<(int Admitted, int Limited, double Seconds, IReadOnlyList<HttpStatusCode> OtherKey)> Hammer(IReadOnlyList<HttpClient> replicas, string quotaSecret, string otherSecret, string json)
    {
        var next = 0;
        HttpClient Next() => replicas[(int)((uint)Interlocked.Increment(ref next) % replicas.Count)];
        int admitted = 0, limited = 0;
        var unexpected = new System.Collections.Concurrent.ConcurrentBag<string>();
        var other = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        var clock = Stopwatch.StartNew();
        long lastSent = 0;
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (clock.Elapsed < Window)
            {
                var sent = clock.ElapsedTicks;
                if (sent > Interlocked.Read(ref lastSent)) Interlocked.Exchange(ref lastSent, sent);
                using var response = await Next().SendAsync(Predict(quotaSecret, json));
                if (response.StatusCode == HttpStatusCode.OK) Interlocked.Increment(ref admitted);
                else if (response.StatusCode == HttpStatusCode.TooManyRequests) Interlocked.Increment(ref limited);
                else unexpected.Add($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
        })).Append(Task.Run(async () =>
        {
            while (clock.Elapsed < Window)
            {
                using var response = await Next().SendAsync(Predict(otherSecret, json));
                other.Add(response.StatusCode);
                await Task.Delay(50);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var seconds = (double)Interlocked.Read(ref lastSent) / Stopwatch.Frequency; // the bucket decided the last request just after it was sent
        Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected.Take(3)));
        return (admitted, limited, seconds, [.. other]);
    }

    [Fact]
    public async Task The_replica_bench_measures_one_shared_quota_against_one_per_replica_and_the_outage_as_configured()
    {
        var (keys, _) = KeysWithQuotaKey();
        const int quota = 600; // 60 at once, then 10/s: a refill step is 1% of what 4 s grant, where 120/min's would be 5%
        var secret = ApiKeyStore.Add(keys, "bench-quota", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: quota);
        var template = model.Options() with { ApiKeysPath = keys, SqueezeCalibrationImages = 500 };
        var directory = Path.Combine(model.Directory, "replica-bench-" + Guid.NewGuid().ToString("N"));
        var bench = await ReplicaBench.RunAsync(new ReplicaBenchOptions(template, secret, quota, model.Secrets["user"],
            ServedModel.Png(model.TestPixels(0)), Replicas: 2, Seconds: 4), directory);
        Assert.True(bench.Passed, System.Text.Json.JsonSerializer.Serialize(bench));
        Assert.InRange(bench.Local.Ratio, 1.7, 2.1); // two replicas, two buckets
        Assert.InRange(bench.Shared.Ratio, 0.95, 1.05);
        Assert.Equal([RedisFailureMode.Closed, RedisFailureMode.Open], bench.Outage.Select(o => o.Mode));
        Assert.Equal(["r1", "r2"], bench.Logs.Select(l => l.ReplicaId).Order());
        // The verdict is not a constant: a quota that only one replica enforced would fail it.
        Assert.False((bench with { Shared = bench.Shared with { Ratio = bench.Local.Ratio } }).Passed);
    }

    [Fact]
    public async Task Without_redis_three_replicas_grant_a_key_three_quotas()
    {
        var (keys, secret) = KeysWithQuotaKey();
        var services = new List<RunningService>();
        try
        {
            foreach (var _ in Enumerable.Range(0, 3)) services.Add(await RunningService.Start(model.Options() with { ApiKeysPath = keys }));
            var (admitted, limited, seconds, _) = await Hammer(services.Select(s => s.Client).ToList(), secret, model.Secrets["user"], RunningService.PixelsJson(model.TestPixels(0)));
            var three = 3 * Allowance(seconds);
            Assert.True(limited > admitted, $"{admitted} admitted, {limited} limited");
            // Each process refills its own bucket on a timer; a tick that a busy machine delays is lost, hence the wider lower bound.
            Assert.InRange(admitted, 0.85 * three, 1.05 * three);
        }
        finally
        {
            foreach (var service in services) await service.DisposeAsync();
        }
    }

    [Fact]
    public async Task With_redis_three_replicas_share_a_key_quota_fail_as_configured_when_redis_dies_and_each_keep_a_log_that_verifies()
    {
        var (keys, secret) = KeysWithQuotaKey();
        var auditDirectory = Path.Combine(model.Directory, "replicas-" + Guid.NewGuid().ToString("N"));
        var auditKey = Path.Combine(model.Directory, "replicas-" + Guid.NewGuid().ToString("N") + ".key");
        var settings = Path.Combine(model.Directory, "replicas-" + Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(settings, """{"Service": {"SqueezeCalibrationImages": 500}}""");
        using (var audit = SecureMnist.Security.SigningKey.Generate()) audit.Save(auditKey); // provisioned once, shared by the replicas
        var redisPort = RunningService.FreePort();
        using var redis = new RedisServerProcess("redis-server", redisPort);
        var ports = Enumerable.Range(0, 3).Select(_ => RunningService.FreePort()).ToArray();
        // r1 and r2 keep the default (fail closed); r3 fails open, to its own quotas.
        var replicas = Enumerable.Range(0, 3).Select(i => new CliProcess(model.Directory, [
            "serve", "--model", model.PackageDirectory, "--public-key", model.PublicKeyPath, "--api-keys", keys, "--config", settings,
            "--audit-dir", auditDirectory, "--audit-key", auditKey, "--urls", $"http://127.0.0.1:{ports[i]}", "--metrics-urls", "none",
            "--redis", $"127.0.0.1:{redisPort}", "--replica-id", $"r{i + 1}", .. (i == 2 ? new[] { "--redis-failure", "open" } : [])])).ToList();
        int admitted, limited;
        var clients = ports.Select(port => new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) }).ToList();
        try
        {
            for (var i = 0; i < 3; i++) await replicas[i].WaitUntilReady(clients[i], TimeSpan.FromMinutes(3));
            var json = RunningService.PixelsJson(model.TestPixels(0));

            (admitted, limited, var seconds, var otherKey) = await Hammer(clients, secret, model.Secrets["user"], json);
            var one = Allowance(seconds);
            Assert.True(limited > admitted, $"{admitted} admitted, {limited} limited");
            Assert.InRange(admitted, 0.95 * one, 1.05 * one); // one quota across the three, not three
            Assert.NotEmpty(otherKey);
            Assert.All(otherKey, status => Assert.Equal(HttpStatusCode.OK, status)); // the other key kept being served

            redis.Kill();
            using (var closed = await clients[0].SendAsync(Predict(model.Secrets["user"], json)))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, closed.StatusCode);
                Assert.Equal("application/problem+json", closed.Content.Headers.ContentType?.MediaType);
                Assert.Contains("quota store", await closed.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
            }
            using (var open = await clients[2].SendAsync(Predict(model.Secrets["user"], json)))
                Assert.Equal(HttpStatusCode.OK, open.StatusCode);
            Assert.Contains(LogEvents(replicas[0]), e => e.GetProperty("EventId").GetInt32() == 20 && e.GetProperty("LogLevel").GetString() == "Error");

            redis.Start(); // the replicas reconnect on their own
            var deadline = DateTime.UtcNow.AddSeconds(30);
            HttpStatusCode status;
            do
            {
                await Task.Delay(250);
                using var again = await clients[0].SendAsync(Predict(model.Secrets["user"], json));
                status = again.StatusCode;
            }
            while (status != HttpStatusCode.OK && DateTime.UtcNow < deadline);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Contains(LogEvents(replicas[0]), e => e.GetProperty("EventId").GetInt32() == 21);
        }
        finally
        {
            foreach (var replica in replicas) replica.Stop(TimeSpan.FromSeconds(30));
            foreach (var client in clients) client.Dispose();
        }

        Assert.Equal(["r1", "r2", "r3"], Directory.GetDirectories(auditDirectory).Select(folder => Path.GetFileName(folder)!).Order().ToArray());
        var (exit, output, error) = CliProcess.Run(model.Directory, "audit", "verify", auditDirectory, "--public-key", Path.ChangeExtension(auditKey, ".pub"), "--json");
        Assert.True(exit == 0, error + output);
        var verdict = JsonDocument.Parse(output).RootElement;
        Assert.True(verdict.GetProperty("intact").GetBoolean());
        var logs = verdict.GetProperty("logs").EnumerateArray().ToList();
        Assert.Equal(3, logs.Count);
        Assert.All(logs, log => Assert.True(log.GetProperty("verdict").GetProperty("checkpointsChecked").GetInt32() >= 1));
        // Every answer the quota key got is in exactly one replica's log: its admitted requests as decisions, the rest as rate-limited.
        var quotaRecords = Directory.GetDirectories(auditDirectory)
            .SelectMany(folder => File.ReadLines(Path.Combine(folder, SecureMnist.Audit.AuditLog.ActiveFile)))
            .Select(line => JsonSerializer.Deserialize<SecureMnist.Audit.AuditRecord>(JsonDocument.Parse(line).RootElement.GetProperty("record"), SecureMnist.IO.JsonFormat.Documents)!)
            .Where(record => record.KeyId == "quota").ToList();
        Assert.Equal(admitted, quotaRecords.Count(r => r.Outcome is SecureMnist.Audit.AuditOutcome.Accepted or SecureMnist.Audit.AuditOutcome.Abstained or SecureMnist.Audit.AuditOutcome.Flagged));
        Assert.Equal(limited, quotaRecords.Count(r => r.Outcome == SecureMnist.Audit.AuditOutcome.RateLimited));
    }

    private static IEnumerable<JsonElement> LogEvents(CliProcess process) =>
        process.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => line.StartsWith('{'))
            .Select(line => JsonDocument.Parse(line).RootElement);
}
