using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureMnist.Assessment;
using SecureMnist.Audit;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>
/// The assessment's look at the running service: start it on a free loopback port with a signed package, then speak
/// HTTP to it as a user, an attacker without a key, a label-only client, a flooding client and a predict key knocking
/// on admin routes; stop it and verify the audit log with its signed checkpoints.
/// </summary>
public static class ServiceSmokeCheck
{
    public static async Task<IReadOnlyDictionary<string, Metric>> RunAsync(string packageDirectory, string publicKeyPath, string workDirectory,
        Dataset mnist, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(mnist);
        var keys = Path.Combine(workDirectory, "api-keys.json");
        if (File.Exists(keys)) File.Delete(keys);
        var user = ApiKeyStore.Add(keys, "user", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 6000);
        var labelOnly = ApiKeyStore.Add(keys, "label-only", [ApiScopes.Predict], labelOnly: true, requestsPerMinute: 6000);
        var limited = ApiKeyStore.Add(keys, "limited", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 2);
        var audit = Path.Combine(workDirectory, "audit");
        if (Directory.Exists(audit)) Directory.Delete(audit, recursive: true);
        var options = new ServiceOptions
        {
            ModelDirectory = packageDirectory, PublicKeyPath = publicKeyPath, ApiKeysPath = keys, AuditDirectory = audit,
            AuditKeyPath = Path.Combine(workDirectory, "audit-signing.key"), DataRoot = Path.GetDirectoryName(mnist.Directory)!,
            Urls = "http://127.0.0.1:0", SqueezeCalibrationImages = 500,
        };
        var metrics = new Dictionary<string, Metric>();
        var app = ServiceHost.Build(options, logging => logging.ClearProviders());
        await app.StartAsync(cancellationToken);
        try
        {
            await app.Services.GetRequiredService<ServiceState>().WaitUntilReadyAsync(TimeSpan.FromMinutes(2));
            using var client = new HttpClient { BaseAddress = ServiceHost.Address(app), Timeout = TimeSpan.FromSeconds(30) };
            var correct = 0;
            const int digits = 20;
            for (var i = 0; i < digits; i++)
            {
                using var response = await Predict(client, user, Pixels(mnist, i), cancellationToken);
                if (i == 0) metrics[ServiceStage.PredictStatus.Name] = Metric.Count((int)response.StatusCode, "HTTP status of an authenticated prediction");
                using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
                if (response.IsSuccessStatusCode && body.RootElement.TryGetProperty("label", out var label) && label.ValueKind == JsonValueKind.Number
                    && label.GetInt32() == mnist.Test.Labels[i]) correct++;
            }
            metrics[ServiceStage.SmokeCorrect.Name] = Metric.Count(correct, $"of {digits} test digits sent over HTTP, answered with the right label");

            using (var anonymous = await Predict(client, null, Pixels(mnist, 0), cancellationToken))
                metrics[ServiceStage.UnauthenticatedStatus.Name] = Metric.Count((int)anonymous.StatusCode, "HTTP status without an API key");
            using (var labels = await Predict(client, labelOnly, Pixels(mnist, 0), cancellationToken))
            {
                var text = await labels.Content.ReadAsStringAsync(cancellationToken);
                metrics[ServiceStage.LabelOnlyScores.Name] = Metric.Count(text.Contains("confidence", StringComparison.Ordinal) || text.Contains("probabilities", StringComparison.Ordinal) ? 1 : 0,
                    "score fields in a label-only key's answer");
            }
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 5; i++)
            {
                using var response = await Predict(client, limited, Pixels(mnist, i), cancellationToken);
                statuses.Add(response.StatusCode);
            }
            metrics[ServiceStage.RateLimitedStatus.Name] = Metric.Count((int)statuses[^1], "HTTP status of a key past its rate (2 per minute, 5 requests)");
            using (var huge = new ByteArrayContent(new byte[(options.MaxBodyBytes) + 1]))
            {
                huge.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = huge };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", user);
                using var response = await client.SendAsync(request, cancellationToken);
                metrics[ServiceStage.OversizedStatus.Name] = Metric.Count((int)response.StatusCode, "HTTP status of a body over the size cap");
            }
            using (var request = new HttpRequestMessage(HttpMethod.Get, "/v1/admin/audit"))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", user);
                using var response = await client.SendAsync(request, cancellationToken);
                metrics[ServiceStage.AdminWithPredictKeyStatus.Name] = Metric.Count((int)response.StatusCode, "HTTP status of an admin route called with a predict-only key");
            }
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }
        var checkpoints = AuditCheckpoint.ReadAll(Path.Combine(audit, AuditCheckpoint.CheckpointsFile));
        var verdict = AuditVerifier.Verify(audit, checkpoints, TrustedPublicKey.FromFile(Path.ChangeExtension(options.AuditKeyPath, ".pub")));
        metrics[ServiceStage.AuditRecords.Name] = Metric.Count(verdict.Records, "audit records written (one per decision)");
        metrics[ServiceStage.AuditIntact.Name] = Metric.Count(verdict.Intact ? 1 : 0, "audit log verifies against its signed checkpoints (1 = yes)");
        return metrics;
    }

    private static float[] Pixels(Dataset mnist, int index) => mnist.Test.Image(index).ToArray().Select(b => b / 255f).ToArray();

    private static async Task<HttpResponseMessage> Predict(HttpClient client, string? secret, float[] pixels, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { pixels }), System.Text.Encoding.UTF8, "application/json"),
        };
        if (secret is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return await client.SendAsync(request, cancellationToken);
    }
}
