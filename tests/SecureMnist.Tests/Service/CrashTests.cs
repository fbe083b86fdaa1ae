using System.Net;
using System.Net.Http.Headers;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.Service;

/// <summary>The real `securemnist serve` process killed with SIGKILL in the middle of load.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class CrashTests(ServedModel model)
{
    private CliProcess Serve(string auditDirectory, string auditKey, int port) => new(model.Directory,
        "serve", "--model", model.PackageDirectory, "--public-key", model.PublicKeyPath, "--api-keys", model.ApiKeysPath,
        "--audit-dir", auditDirectory, "--audit-key", auditKey, "--urls", $"http://127.0.0.1:{port}");

    [Fact]
    public async Task After_kill_9_under_load_the_log_verifies_and_holds_every_answered_request()
    {
        var auditDirectory = Path.Combine(model.Directory, "crash-audit-" + Guid.NewGuid().ToString("N"));
        var auditKey = Path.Combine(model.Directory, "crash-audit-" + Guid.NewGuid().ToString("N") + ".key");
        var port = RunningService.FreePort();
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
        var png = ServedModel.Png(model.TestPixels(0));
        var answered = new System.Collections.Concurrent.ConcurrentBag<string>();

        using (var first = Serve(auditDirectory, auditKey, port))
        {
            await first.WaitUntilReady(client, TimeSpan.FromMinutes(2));
            using var stop = new CancellationTokenSource();
            var workers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    using var content = new ByteArrayContent(png);
                    content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = content };
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", model.Secrets["user"]);
                    try
                    {
                        using var response = await client.SendAsync(request);
                        var body = await response.Content.ReadAsStringAsync();
                        if (response.IsSuccessStatusCode)
                            answered.Add(System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("requestId").GetString()!);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
                    {
                        // the process died mid-request: no answer, so nothing is owed
                    }
                }
            })).ToArray();
            await Task.Delay(TimeSpan.FromSeconds(3));
            first.KillNow();
            stop.Cancel();
            await Task.WhenAll(workers);
            // serve's operational log: one JSON object per line on standard output, one event per decision.
            var lines = first.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var events = lines.SkipLast(1).Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement).ToList(); // the last may be cut by the kill
            var decisions = events.Where(e => e.GetProperty("EventId").GetInt32() == 1 && e.GetProperty("Category").GetString() == SecureMnist.Server.ServiceLog.Category).ToList();
            Assert.True(decisions.Count >= answered.Count / 2, $"{decisions.Count} decision events for {answered.Count} answers");
            var state = decisions[0].GetProperty("State");
            Assert.Equal("user", state.GetProperty("KeyId").GetString());
            Assert.Contains(decisions, d => answered.Contains(d.GetProperty("State").GetProperty("RequestId").GetString()!));
            Assert.True(state.GetProperty("LatencyMs").GetDouble() >= 0);
            Assert.Contains(events, e => e.GetProperty("State").TryGetProperty("ModelSha256", out _)); // the ready event
        }
        Assert.True(answered.Count > 20, $"only {answered.Count} requests answered before the kill");

        using (var second = Serve(auditDirectory, auditKey, port))
        {
            await second.WaitUntilReady(client, TimeSpan.FromMinutes(2)); // the restarted service verified the log before opening it
            second.KillNow();
        }
        var checkpointsPath = Path.Combine(auditDirectory, AuditCheckpoint.CheckpointsFile);
        var checkpoints = File.Exists(checkpointsPath) ? AuditCheckpoint.ReadAll(checkpointsPath) : [];
        using var key = SigningKey.FromFile(auditKey);
        var verdict = AuditVerifier.Verify(auditDirectory, checkpoints, key.PublicKey);
        Assert.True(verdict.Intact, $"{verdict.Location}: {verdict.Problem}");
        var logged = File.ReadLines(Path.Combine(auditDirectory, AuditLog.ActiveFile))
            .Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("record").GetProperty("requestId").GetString())
            .ToHashSet();
        var missing = answered.Where(id => !logged.Contains(id)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {answered.Count} answered requests are not in the log");
    }
}
