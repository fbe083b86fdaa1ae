using System.Net;
using System.Text.Json;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Serving;
using TorchSharp;

namespace SecureMnist.Tests.Service;

[Collection(ServedModelCollection.Name)]
public sealed class ServiceTests(ServedModel model)
{
    private static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

    private static async Task AssertProblem(HttpResponseMessage response, HttpStatusCode status, string detailContains)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains(detailContains, body, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal); // never a stack trace
    }

    [Fact]
    public async Task A_signed_model_answers_a_drawn_digit_and_the_decision_is_audited()
    {
        await using var service = await RunningService.Start(model.Options());
        var (index, expected) = (0, model.Mnist.Test.Labels[0]);
        var response = await service.PredictPng(ServedModel.Png(model.TestPixels(index)), model.Secrets["user"], "?explain=true");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Json(response);
        Assert.Equal(expected, body.GetProperty("label").GetInt32());
        Assert.Equal(10, body.GetProperty("probabilities").GetArrayLength());
        Assert.Equal(784, body.GetProperty("saliency").GetArrayLength());
        var record = Assert.Single(service.AuditRecords());
        Assert.Equal("user", record.KeyId);
        Assert.Equal(body.GetProperty("decision").GetString(), record.Outcome.ToString().ToLowerInvariant());
        Assert.Equal(service.State.ModelDigest, record.ModelDigest);
        Assert.Equal(64, record.InputSha256!.Length);
    }

    [Theory]
    [InlineData("spec")] // LeNet-5 (tanh, average pooling) from PyTorch through --arch-spec
    [InlineData("onnx")] // the seeds' CNN exported to ONNX, run by ONNX Runtime
    public async Task Networks_imported_from_a_layer_list_or_onnx_are_served_like_any_other(string kind)
    {
        var fixtures = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures");
        var package = Path.Combine(model.Directory, kind + "-" + Guid.NewGuid().ToString("N"));
        using (var key = SigningKey.FromFile(Path.Combine(model.Directory, "signing.key")))
        {
            if (kind == "spec")
                SecureMnist.Interop.PyTorchImport.Import(Path.Combine(fixtures, "pytorch", "lenet5-sequential.pth"),
                    SecureMnist.Modeling.ArchitectureSpec.Load(Path.Combine(fixtures, "pytorch", "lenet5.spec.json")), package, key);
            else ModelPackage.WriteOnnx(package, File.ReadAllBytes(Path.Combine(fixtures, "onnx", "seed-cnn.onnx")), new ModelPackage.Provenance(null, null, null, null), key);
        }
        await using var service = await RunningService.Start(model.Options(package));
        // An explanation needs gradients, which an ONNX model does not give: it is left out, and the prediction still answers.
        var response = await service.PredictPng(ServedModel.Png(model.TestPixels(0)), model.Secrets["user"], "?explain=true");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Json(response);
        // The fixtures' weights are untrained, so the service may well abstain; what matters is that the network answers.
        Assert.False(string.IsNullOrEmpty(body.GetProperty("decision").GetString()));
        Assert.Equal(1.0, body.GetProperty("probabilities").EnumerateArray().Sum(p => p.GetDouble()), 3);
        Assert.Equal(kind == "spec", body.TryGetProperty("saliency", out var saliency) && saliency.ValueKind == System.Text.Json.JsonValueKind.Array);
        var metadata = await Json(await service.Send(HttpMethod.Get, "/v2/models/mnist", model.Secrets["user"]));
        Assert.Equal(kind == "spec" ? "securemnist_custom" : "securemnist_onnx", metadata.GetProperty("platform").GetString());
    }

    [Fact]
    public async Task A_tampered_package_never_becomes_ready()
    {
        var copy = Path.Combine(model.Directory, "tampered-" + Guid.NewGuid().ToString("N"));
        CopyPackage(model.PackageDirectory, copy);
        var weights = Path.Combine(copy, ModelPackage.WeightsFile);
        var bytes = File.ReadAllBytes(weights);
        bytes[^10] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        await using var service = await RunningService.Start(model.Options(copy), waitUntilReady: false);
        await service.State.Settled.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(SecureMnist.Server.Readiness.Failed, service.State.Readiness);
        await AssertProblem(await service.Send(HttpMethod.Get, "/readyz", null), HttpStatusCode.ServiceUnavailable, "model not loaded");
        await AssertProblem(await service.PredictPng(ServedModel.Png(model.TestPixels(0)), model.Secrets["user"]), HttpStatusCode.ServiceUnavailable, "not loaded");
    }

    [Fact]
    public async Task An_admin_reload_switches_to_a_newly_signed_package_and_refuses_a_tampered_one()
    {
        var folder = Path.Combine(model.Directory, "reloadable-" + Guid.NewGuid().ToString("N"));
        CopyPackage(model.PackageDirectory, folder);
        await using var service = await RunningService.Start(model.Options(folder));
        var original = service.State.ModelDigest;
        await AssertProblem(await service.Send(HttpMethod.Post, "/v1/admin/reload", model.Secrets["user"]), HttpStatusCode.Forbidden, "scope");

        var weights = Path.Combine(folder, ModelPackage.WeightsFile);
        var bytes = File.ReadAllBytes(weights);
        bytes[^10] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        await AssertProblem(await service.Send(HttpMethod.Post, "/v1/admin/reload", model.Secrets["admin"]), HttpStatusCode.Conflict, "keeps model");
        Assert.Equal(original, service.State.ModelDigest);
        Assert.Equal(HttpStatusCode.OK, (await service.PredictPng(ServedModel.Png(model.TestPixels(1)), model.Secrets["user"])).StatusCode);

        // A retrained package, signed with the trusted key, put in place: the reload takes it.
        Directory.Delete(folder, recursive: true);
        using (var key = SigningKey.FromFile(Path.ChangeExtension(model.PublicKeyPath, ".key")))
        using (var retrained = new SecureMnist.Training.Trainer(new SecureMnist.Training.TrainingOptions { TrainSubset = 2000, Epochs = 1, Seed = 9 }, model.Mnist,
                   Path.Combine(model.Directory, "reload-run-" + Guid.NewGuid().ToString("N"))).Run(resume: false).Network)
            ModelPackage.Write(folder, "seed-cnn", retrained, new ModelPackage.Provenance("mnist", null, null, null), key);
        var reloaded = await service.Send(HttpMethod.Post, "/v1/admin/reload", model.Secrets["admin"]);
        Assert.Equal(HttpStatusCode.OK, reloaded.StatusCode);
        Assert.NotEqual(original, service.State.ModelDigest);
        Assert.Equal(original, (await Json(reloaded)).GetProperty("previous").GetString());
        var answer = await Json(await service.PredictPng(ServedModel.Png(model.TestPixels(1)), model.Secrets["user"]));
        Assert.Equal(service.State.ModelDigest, answer.GetProperty("model").GetString());
        Assert.Contains(service.AuditRecords(), r => r.Outcome == AuditOutcome.Reloaded);
    }

    private static void CopyPackage(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    [Fact]
    public async Task Requests_without_a_valid_key_or_scope_are_refused_and_audited()
    {
        var metricsPort = RunningService.FreePort();
        var service = await RunningService.Start(model.Options() with { MetricsUrls = $"http://127.0.0.1:{metricsPort}/metrics" });
        var png = ServedModel.Png(model.TestPixels(1));
        await AssertProblem(await service.PredictPng(png, null), HttpStatusCode.Unauthorized, "API key is required");
        await AssertProblem(await service.PredictPng(png, "smk_" + new string('A', 43)), HttpStatusCode.Unauthorized, "not valid");
        await AssertProblem(await service.PredictPng(png, model.Secrets["admin"]), HttpStatusCode.Forbidden, "scope");
        await AssertProblem(await service.Send(HttpMethod.Post, "/v1/admin/reload", model.Secrets["user"]), HttpStatusCode.Forbidden, "scope");
        using var scraper = new HttpClient();
        const string fourRefusals = "securemnist_service_decisions\\{[^}]*outcome=\"unauthorized\"[^}]*\\} 4\n";
        Assert.Matches(fourRefusals, await MetricsListenerTests.Scrape(scraper, metricsPort, fourRefusals));
        Assert.Equal(2, service.AuditRecords().Count(r => r.Outcome == AuditOutcome.Unauthorized)); // the two with a key, at once
        await service.DisposeAsync();
        var unauthorized = service.AuditRecords().Where(r => r.Outcome == AuditOutcome.Unauthorized).ToList();
        Assert.Equal(3, unauthorized.Count); // and the two without one, in one record per address and window
        var aggregated = Assert.Single(unauthorized, r => r.Count is not null);
        Assert.Equal(2, aggregated.Count);
        Assert.Equal("127.0.0.1", aggregated.Client);
        Assert.Null(aggregated.KeyId);
    }

    [Fact]
    public async Task A_label_only_key_gets_no_scores()
    {
        await using var service = await RunningService.Start(model.Options());
        var body = await Json(await service.PredictPng(ServedModel.Png(model.TestPixels(2)), model.Secrets["label-only"], "?explain=true"));
        Assert.True(body.TryGetProperty("label", out _));
        foreach (var hidden in new[] { "confidence", "probabilities", "saliency", "squeezeScore" })
            Assert.False(body.TryGetProperty(hidden, out _), $"{hidden} leaked to a label-only key");
    }

    [Fact]
    public async Task A_key_over_its_rate_gets_429_with_retry_after()
    {
        await using var service = await RunningService.Start(model.Options());
        var png = ServedModel.Png(model.TestPixels(3));
        Assert.Equal(HttpStatusCode.OK, (await service.PredictPng(png, model.Secrets["slow"])).StatusCode);
        var limited = await service.PredictPng(png, model.Secrets["slow"]);
        await AssertProblem(limited, HttpStatusCode.TooManyRequests, "retry after");
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After {limited.Headers.RetryAfter}");
        Assert.Equal(HttpStatusCode.OK, (await service.PredictPng(png, model.Secrets["user"])).StatusCode); // other keys unaffected
        Assert.Contains(service.AuditRecords(), r => r.Outcome == AuditOutcome.RateLimited && r.KeyId == "slow");
    }

    [Fact]
    public async Task Oversized_bodies_and_batches_get_413()
    {
        await using var service = await RunningService.Start(model.Options() with { MaxBodyBytes = 4096, MaxBatchItems = 3 });
        await AssertProblem(await service.PredictPng(new byte[5000], model.Secrets["user"]), HttpStatusCode.RequestEntityTooLarge, "4,096 byte limit");
        var item = RunningService.PixelsJson(model.TestPixels(4));
        var batch = $"{{\"items\": [{item},{item},{item},{item}]}}";
        await using var roomy = await RunningService.Start(model.Options() with { MaxBatchItems = 3 });
        await AssertProblem(await roomy.PredictJson(batch, model.Secrets["user"], "/v1/predict/batch"), HttpStatusCode.RequestEntityTooLarge, "at most 3");
        var ok = await roomy.PredictJson($"{{\"items\": [{item},{item}]}}", model.Secrets["user"], "/v1/predict/batch");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(2, (await Json(ok)).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Invalid_inputs_get_clear_problems()
    {
        await using var service = await RunningService.Start(model.Options() with { Images = new ImageLimits(MaxSide: 512, Colour: ColourPolicy.Reject) });
        var key = model.Secrets["user"];
        var text = new StringContent("seven", System.Text.Encoding.UTF8, "text/plain");
        await AssertProblem(await service.Send(HttpMethod.Post, "/v1/predict", key, text), HttpStatusCode.UnsupportedMediaType, "image/png");
        await AssertProblem(await service.PredictPng([0x89, 0x50, 0x4E, 0x47, 1, 2, 3], key), HttpStatusCode.BadRequest, "not a decodable image");
        await AssertProblem(await service.PredictPng(ServedModel.Png(new float[600 * 600], 600), key), HttpStatusCode.BadRequest, "600x600");
        await AssertProblem(await service.PredictPng(PngHeader(60000, 60000), key), HttpStatusCode.BadRequest, "60000x60000");
        await AssertProblem(await service.PredictPng(ColourPng(), key), HttpStatusCode.BadRequest, "colour");
        await AssertProblem(await service.PredictJson("{\"pixels\": [0.5, 0.5]}", key), HttpStatusCode.BadRequest, "784 values");
        var outOfRange = model.TestPixels(5);
        outOfRange[100] = 2;
        await AssertProblem(await service.PredictJson(RunningService.PixelsJson(outOfRange), key), HttpStatusCode.BadRequest, "[0, 1]");
        await AssertProblem(await service.PredictJson("{\"pixels\": [NaN]}", key), HttpStatusCode.BadRequest, "not valid JSON");
        await AssertProblem(await service.PredictJson("{\"pixels\": [\"1\"]}", key), HttpStatusCode.BadRequest, "numbers");
        await AssertProblem(await service.Send(HttpMethod.Get, "/v1/nothing-here", key), HttpStatusCode.NotFound, "404");
        Assert.All(service.AuditRecords().Take(9), r => Assert.Equal(AuditOutcome.Rejected, r.Outcome));
    }

    [Fact]
    public async Task Pictures_that_are_not_digits_are_rejected()
    {
        await using var service = await RunningService.Start(model.Options());
        var fashion = new SecureMnist.Data.DatasetStore(TestPaths.DataRoot).Load("fashion-mnist").Test;
        var rejected = 0;
        for (var i = 0; i < 20; i++)
        {
            var pixels = fashion.Image(i).ToArray().Select(b => b / 255f).ToArray();
            var response = await service.PredictJson(RunningService.PixelsJson(pixels), model.Secrets["user"]);
            if (response.StatusCode == HttpStatusCode.UnprocessableEntity) rejected++;
        }
        Assert.True(rejected >= 10, $"{rejected}/20 Fashion-MNIST images rejected");
        var gray = Enumerable.Repeat(0.5f, 784).ToArray();
        await AssertProblem(await service.PredictJson(RunningService.PixelsJson(gray), model.Secrets["user"]), HttpStatusCode.UnprocessableEntity, "not a digit");
    }

    [Fact]
    public async Task A_slow_request_times_out_with_504()
    {
        // A 3 s batching window holds the request well past the 0.3 s timeout.
        await using var service = await RunningService.Start(model.Options() with { RequestTimeoutSeconds = 0.3, Batching = new BatchingOptions(MaxDelayMilliseconds: 3000) });
        await AssertProblem(await service.PredictPng(ServedModel.Png(model.TestPixels(6)), model.Secrets["user"]), HttpStatusCode.GatewayTimeout, "within 0.3 s");
        Assert.Contains(service.AuditRecords(), r => r.Outcome == AuditOutcome.Failed && r.Reason!.Contains("within", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_saturated_service_answers_503_instead_of_queueing()
    {
        await using var service = await RunningService.Start(model.Options() with { Batching = new BatchingOptions(MaxDelayMilliseconds: 1500, QueueCapacity: 2) });
        var png = ServedModel.Png(model.TestPixels(7));
        var first = service.PredictPng(png, model.Secrets["user"]);
        var second = service.PredictPng(png, model.Secrets["user"]);
        for (var i = 0; i < 100 && service.State.Engine!.QueueLength < 2; i++) await Task.Delay(10);
        var third = await service.PredictPng(png, model.Secrets["user"]);
        await AssertProblem(third, HttpStatusCode.ServiceUnavailable, "queue is full");
        Assert.NotNull(third.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await second).StatusCode);
    }

    [Fact]
    public async Task Concurrent_requests_share_forward_passes()
    {
        await using var service = await RunningService.Start(model.Options() with { Batching = new BatchingOptions(MaxDelayMilliseconds: 50) });
        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => service.PredictPng(ServedModel.Png(model.TestPixels(i)), model.Secrets["user"])));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var engine = service.State.Engine!;
        Assert.Equal(16, engine.BatchedInputs);
        Assert.True(engine.Batches < 16, $"{engine.Batches} forward passes for 16 requests");
    }

    [Fact]
    public async Task A_bf16_service_serves_the_verified_model_in_bfloat16_and_answers_as_fp32_does()
    {
        await using var service = await RunningService.Start(model.Options() with { Precision = InferencePrecision.Bf16 });
        Assert.All(service.State.Engine!.Model.Network.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, p.dtype));
        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => service.PredictPng(ServedModel.Png(model.TestPixels(i)), model.Secrets["user"])));
        var answered = new List<(int Index, int Label)>();
        for (var i = 0; i < responses.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, responses[i].StatusCode);
            var body = await Json(responses[i]);
            if (body.GetProperty("label").ValueKind == JsonValueKind.Number) answered.Add((i, body.GetProperty("label").GetInt32()));
        }
        Assert.True(answered.Count >= 15, $"only {answered.Count} of 20 clean digits answered");

        // The same package in float32 and converted to bfloat16 agree on (almost) every test digit.
        using var fp32 = ModelPackage.Load(model.PackageDirectory, TrustedPublicKey.FromFile(model.PublicKeyPath));
        using var bf16 = ModelPackage.Load(model.PackageDirectory, TrustedPublicKey.FromFile(model.PublicKeyPath));
        bf16.Network.to(TorchSharp.torch.ScalarType.BFloat16);
        using var images = model.Mnist.Test.Take(2000).ImagesTensor();
        int[] full, half;
        using (var classifier = new SecureMnist.Attacks.Evasion.NetworkClassifier(fp32.Network)) full = SecureMnist.Attacks.Evasion.ClassifierInference.Predict(classifier, images);
        using (var classifier = new SecureMnist.Attacks.Evasion.NetworkClassifier(bf16.Network)) half = SecureMnist.Attacks.Evasion.ClassifierInference.Predict(classifier, images);
        var agreement = full.Zip(half).Count(p => p.First == p.Second) / (double)full.Length;
        Assert.True(agreement >= 0.99, $"bf16 and fp32 agree on {agreement:P2} of 2,000 test digits");
        Assert.All(answered, a => Assert.Equal(half[a.Index], a.Label));
    }

    [Fact]
    public async Task Every_decision_is_in_an_intact_chain_with_a_signed_checkpoint_at_shutdown()
    {
        var options = model.Options();
        await using (var service = await RunningService.Start(options))
        {
            await service.PredictPng(ServedModel.Png(model.TestPixels(8)), model.Secrets["user"]);
            await service.PredictPng(ServedModel.Png(model.TestPixels(8)), null);
            await service.PredictJson("{}", model.Secrets["user"]);
        }
        var checkpoints = AuditCheckpoint.ReadAll(Path.Combine(options.AuditDirectory, AuditCheckpoint.CheckpointsFile));
        using var auditKey = SigningKey.FromFile(options.AuditKeyPath);
        var verdict = AuditVerifier.Verify(options.AuditDirectory, checkpoints, auditKey.PublicKey);
        Assert.True(verdict.Intact, verdict.Problem);
        Assert.Equal(3, verdict.Records);
        Assert.True(verdict.CheckpointsChecked >= 1);
    }

    [Fact]
    public async Task The_page_is_served_with_a_strict_content_security_policy()
    {
        await using var service = await RunningService.Start(model.Options());
        var page = await service.Send(HttpMethod.Get, "/", null);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<canvas id=\"pad\"", await page.Content.ReadAsStringAsync());
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal(HttpStatusCode.OK, (await service.Send(HttpMethod.Get, "/app.js", null)).StatusCode);
    }

    /// <summary>A PNG that declares huge dimensions in its header (a decompression bomb's calling card).</summary>
    private static byte[] PngHeader(int width, int height)
    {
        var header = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth; colour type 0 (gray)
        using var stream = new MemoryStream();
        stream.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(stream, "IHDR", header);
        Chunk(stream, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk(stream, "IEND", []);
        return stream.ToArray();
    }

    private static void Chunk(Stream stream, string type, byte[] data)
    {
        var length = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        stream.Write(length);
        var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        stream.Write(typed);
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        stream.Write(crc);
    }

    private static uint Crc32(byte[] bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    private static byte[] ColourPng()
    {
        using var bitmap = new SkiaSharp.SKBitmap(28, 28);
        bitmap.Erase(new SkiaSharp.SKColor(200, 30, 30));
        using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
