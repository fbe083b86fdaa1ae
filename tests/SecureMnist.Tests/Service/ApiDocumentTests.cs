using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace SecureMnist.Tests.Service;

/// <summary>The OpenAPI document: every mapped route in it, keyed routes marked with the security schemes.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class ApiDocumentTests(ServedModel model)
{
    [Fact]
    public async Task Every_mapped_route_is_in_the_openapi_document_with_its_security()
    {
        await using var service = await RunningService.Start(model.Options(), waitUntilReady: false);
        var response = await service.Send(HttpMethod.Get, "/openapi/v1.json", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = document.RootElement;
        Assert.StartsWith("3.", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var paths = root.GetProperty("paths");

        var mapped = service.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText != SecureMnist.Server.ApiDocument.Route)
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => (Path: "/" + e.RoutePattern.RawText!.TrimStart('/'), Method: m.ToLowerInvariant(), Endpoint: e)))
            .ToList();
        Assert.True(mapped.Count >= 15, $"only {mapped.Count} routes found");
        foreach (var (path, method, endpoint) in mapped)
        {
            Assert.True(paths.TryGetProperty(path, out var item), $"{method.ToUpperInvariant()} {path} is mapped but not in the OpenAPI document");
            Assert.True(item.TryGetProperty(method, out var operation), $"{method.ToUpperInvariant()} {path} is mapped but its method is not in the OpenAPI document");
            var keyed = endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>() is not null;
            Assert.True(keyed == operation.TryGetProperty("security", out _), $"{method.ToUpperInvariant()} {path}: security is {(keyed ? "missing" : "claimed for an open route")}");
        }

        var schemes = root.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("bearer", schemes.GetProperty("bearer").GetProperty("scheme").GetString());
        Assert.Equal("X-Api-Key", schemes.GetProperty("apiKey").GetProperty("name").GetString());
        // The protocol's response schema is described, not left as an opaque object.
        var infer = paths.GetProperty("/v2/models/{name}/infer").GetProperty("post").GetProperty("responses").GetProperty("200");
        Assert.Contains("model_name", infer.GetRawText() + root.GetProperty("components").GetProperty("schemas").GetRawText(), StringComparison.Ordinal);
    }
}

/// <summary>The metrics listener a Prometheus server scrapes: its own port, no key, the service's and ASP.NET Core's instruments.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class MetricsListenerTests(ServedModel model)
{
    /// <summary>Scrapes until the pattern <paramref name="expected"/> matches (the meter adapter publishes measurements within a second or so), at most 10 s.</summary>
    internal static async Task<string> Scrape(HttpClient scraper, int port, string expected)
    {
        var text = "";
        for (var attempt = 0; attempt < 100 && !System.Text.RegularExpressions.Regex.IsMatch(text, expected); attempt++)
        {
            if (attempt > 0) await Task.Delay(100);
            text = await scraper.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
        }
        return text;
    }

    [Fact]
    public async Task A_scrape_finds_decisions_by_outcome_latency_histograms_and_request_counters_without_a_key()
    {
        var port = RunningService.FreePort();
        await using var service = await RunningService.Start(model.Options() with { MetricsUrls = $"http://127.0.0.1:{port}/metrics" });
        Assert.Equal(HttpStatusCode.OK, (await service.PredictJson(RunningService.PixelsJson(model.TestPixels(0)), model.Secrets["user"])).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await service.PredictJson(RunningService.PixelsJson(model.TestPixels(0)), null)).StatusCode);
        using var scraper = new HttpClient();
        var text = await Scrape(scraper, port, "securemnist_service_decision_duration_bucket");
        Assert.Matches("securemnist_service_decisions\\{[^}]*outcome=\"(accepted|abstained|flagged)\"[^}]*\\} 1", text);
        Assert.Matches("securemnist_service_decision_duration_bucket\\{", text);
        Assert.Matches("(?m)^securemnist_service_ready 1", text);
        Assert.Matches("http_server_request_duration[a-z_]*_(bucket|count)\\{", text); // ASP.NET Core's own request metrics
        // The API's port serves no metrics, and the metrics port serves nothing else.
        Assert.Equal(HttpStatusCode.NotFound, (await service.Send(HttpMethod.Get, "/metrics", model.Secrets["admin"])).StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, (await scraper.GetAsync(new Uri($"http://127.0.0.1:{port}/v1/predict"))).StatusCode);
    }
}
