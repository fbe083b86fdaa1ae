using System.Net;
using System.Text;
using System.Text.Json;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary>The extraction monitor inside the real service: a key sending augmentation-style queries is flagged and loses what the policy says; others keep being served.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class ExtractionMonitoringTests(ServedModel model)
{
    private sealed record Keys(string Path, string Attacker, string Benign);

    private Keys FreshKeys()
    {
        var folder = System.IO.Path.Combine(model.Directory, "extraction-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var path = System.IO.Path.Combine(folder, "api-keys.json");
        return new Keys(path, ApiKeyStore.Add(path, "attacker", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 60_000),
            ApiKeyStore.Add(path, "benign", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 60_000));
    }

    /// <summary>Papernot et al.'s query pattern: 150 real digits, then each known image stepped by 0.1 times a sign pattern, 32 per batch request.</summary>
    private static async Task<int> SendAugmentationQueries(RunningService service, string secret, ServedModel model, int limit)
    {
        var random = new SeededRandom(9);
        var known = Enumerable.Range(0, 150).Select(model.TestPixels).ToList();
        var queue = new Queue<float[]>(known);
        var sent = 0;
        while (sent < limit)
        {
            while (queue.Count < 32)
                foreach (var image in known.ToList())
                {
                    var step = image.Select(p => Math.Clamp(p + (random.NextDouble() < 0.5 ? -0.1f : 0.1f), 0f, 1f)).ToArray();
                    known.Add(step);
                    queue.Enqueue(step);
                }
            var items = Enumerable.Range(0, 32).Select(_ => new { pixels = queue.Dequeue() }).ToList();
            using var content = new StringContent(JsonSerializer.Serialize(new { items }), Encoding.UTF8, "application/json");
            using var response = await service.Send(HttpMethod.Post, "/v1/predict/batch", secret, content);
            sent += 32;
            if (response.StatusCode != HttpStatusCode.OK) return sent;
            if (service.State.Extraction!.Status("attacker").Flagged) return sent;
        }
        return sent;
    }

    [Theory]
    [InlineData(ExtractionAction.LabelOnly)]
    [InlineData(ExtractionAction.Block)]
    public async Task An_augmentation_attack_is_flagged_audited_and_loses_its_scores_or_its_access(ExtractionAction action)
    {
        var keys = FreshKeys();
        var options = model.Options() with { ApiKeysPath = keys.Path, Extraction = new ExtractionMonitorOptions(Action: action) };
        await using (var service = await RunningService.Start(options))
        {
            var sent = await SendAugmentationQueries(service, keys.Attacker, model, limit: 640);
            var status = service.State.Extraction!.Status("attacker");
            Assert.True(status.Flagged, $"not flagged after {sent} queries (W {status.LastW})");
            Assert.True(sent <= 320, $"flagged only after {sent} queries");

            var png = ServedModel.Png(model.TestPixels(0));
            using var attacker = await service.PredictPng(png, keys.Attacker);
            var body = await attacker.Content.ReadAsStringAsync();
            if (action == ExtractionAction.LabelOnly)
            {
                Assert.Equal(HttpStatusCode.OK, attacker.StatusCode);
                Assert.DoesNotContain("confidence", body, StringComparison.Ordinal);
                Assert.DoesNotContain("probabilities", body, StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal(HttpStatusCode.Forbidden, attacker.StatusCode);
                Assert.Contains("model extraction suspected", body, StringComparison.Ordinal);
            }
            using var benign = await service.PredictPng(png, keys.Benign);
            Assert.Equal(HttpStatusCode.OK, benign.StatusCode);
            Assert.Contains("confidence", await benign.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Contains(service.AuditRecords(), r => r.KeyId == "attacker" && r.Reason?.Contains("model extraction suspected", StringComparison.Ordinal) == true);
        }
        // The flag is kept beside the key file, and a restarted service still applies it.
        var saved = Assert.Single(ExtractionStatusFile.Load(ExtractionStatusFile.For(keys.Path)));
        Assert.Equal("attacker", saved.KeyId);
        await using (var restarted = await RunningService.Start(options))
            Assert.True(restarted.State.Extraction!.Status("attacker").Flagged);
    }

    [Fact]
    public async Task With_monitoring_off_the_same_queries_keep_their_scores()
    {
        var keys = FreshKeys();
        await using var service = await RunningService.Start(model.Options() with { ApiKeysPath = keys.Path, Extraction = new ExtractionMonitorOptions(Action: ExtractionAction.Off) });
        Assert.Null(service.State.Extraction);
        var random = new SeededRandom(9);
        for (var i = 0; i < 10; i++)
        {
            var items = Enumerable.Range(0, 32).Select(j => new { pixels = model.TestPixels(j % 5).Select(p => Math.Clamp(p + (random.NextDouble() < 0.5 ? -0.1f : 0.1f), 0f, 1f)).ToArray() }).ToList();
            using var content = new StringContent(JsonSerializer.Serialize(new { items }), Encoding.UTF8, "application/json");
            using var response = await service.Send(HttpMethod.Post, "/v1/predict/batch", keys.Attacker, content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        using var last = await service.PredictPng(ServedModel.Png(model.TestPixels(0)), keys.Attacker);
        Assert.Contains("confidence", await last.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(File.Exists(ExtractionStatusFile.For(keys.Path)));
    }
}
