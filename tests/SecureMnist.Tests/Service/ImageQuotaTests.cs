using System.Net;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary>A key's quota counts images: a batch costs what as many single requests would, on /v1 and /v2 alike.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class ImageQuotaTests(ServedModel model)
{
    private (string Keys, string Secret) Key(int perMinute)
    {
        var folder = Path.Combine(model.Directory, "quota-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var keys = Path.Combine(folder, "api-keys.json");
        return (keys, ApiKeyStore.Add(keys, "batcher", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: perMinute));
    }

    private string Batch(int count) => $"{{\"items\": [{string.Join(",", Enumerable.Range(0, count).Select(i => RunningService.PixelsJson(model.TestPixels(i))))}]}}";

    private string Infer(int count) =>
        $"{{\"inputs\": [{{\"name\": \"input\", \"shape\": [{count}, 784], \"datatype\": \"FP32\", \"data\": [{string.Join(",", Enumerable.Range(0, count).SelectMany(model.TestPixels).Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]}}]}}";

    [Theory]
    [InlineData("/v1/predict/batch")]
    [InlineData("/v2/models/mnist/infer")]
    public async Task Batches_spend_one_token_per_image(string path)
    {
        // 300 images a minute: a bucket of 30.
        var (keys, secret) = Key(300);
        await using var service = await RunningService.Start(model.Options() with { ApiKeysPath = keys });
        string Body(int n) => path.StartsWith("/v1", StringComparison.Ordinal) ? Batch(n) : Infer(n);
        var tooLarge = await service.PredictJson(Body(31), secret, path);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Contains("at most 30 at once", await tooLarge.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await service.PredictJson(Body(20), secret, path)).StatusCode);
        // 20 of the 30 are spent (the refused request took one token too): another 20 exceed what is left.
        var limited = await service.PredictJson(Body(20), secret, path);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.NotNull(limited.Headers.RetryAfter);
        Assert.Contains(service.AuditRecords(), r => r.KeyId == "batcher" && r.Outcome == SecureMnist.Audit.AuditOutcome.RateLimited);
    }
}
