using System.Net;
using System.Text;
using System.Text.Json;
using SecureMnist.Audit;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary>The Open Inference Protocol v2 request parser, against the request forms of the KServe v2 specification.</summary>
public sealed class InferenceProtocolParserTests
{
    private static byte[] Body(string json) => Encoding.UTF8.GetBytes(json);

    private static string Flat(int images, double value = 0.5) => string.Join(",", Enumerable.Repeat(value.ToString(System.Globalization.CultureInfo.InvariantCulture), images * 784));

    [Fact]
    public void The_spec_request_form_with_id_and_requested_outputs_is_accepted_flat_or_nested()
    {
        // The specification's example (id "42", inputs with name/shape/datatype/data, outputs by name), with this model's tensor.
        var flat = InferenceProtocol.Parse(Body($$"""{"id": "42", "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": [{{Flat(2)}}]}], "outputs": [{"name": "label"}]}"""), 32);
        Assert.Equal("42", flat.Id);
        Assert.Equal(2, flat.Images.Count);
        Assert.Equal(["label"], flat.Outputs);
        // "Tensor elements may be presented in their natural multi-dimensional representation": [N,1,28,28] as nested arrays.
        var row = string.Join(",", Enumerable.Repeat("0.5", 28));
        var image = "[[" + string.Join(",", Enumerable.Repeat($"[{row}]", 28)) + "]]";
        var nested = InferenceProtocol.Parse(Body($$"""{"inputs": [{"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": [{{image}}, {{image}}]}]}"""), 32);
        Assert.Null(nested.Id);
        Assert.Equal(InferenceProtocol.OutputNames, nested.Outputs);
        Assert.Equal(flat.Images.Select(i => i.ToArray()), nested.Images.Select(i => i.ToArray()));
        var threeD = InferenceProtocol.Parse(Body($$"""{"parameters": { }, "inputs": [{"name": "x", "parameters": {"content_type": "np"}, "shape": [1, 28, 28], "datatype": "FP32", "data": [{{Flat(1)}}]}]}"""), 32);
        Assert.Single(threeD.Images);
    }

    [Theory]
    [InlineData("""{"id": "42", "inputs": [{"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]}, {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [true]}], "outputs": [{"name": "output0"}]}""", "the request has 2 inputs")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": [1]}]}""", "datatype UINT8; this model takes FP32")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [1, 3, 28, 28], "datatype": "FP32", "data": [1]}]}""", "has shape [1,3,28,28]")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.5]}]}""", "784 values; its data holds 1")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [0, 784], "datatype": "FP32", "data": []}]}""", "holds no images")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [-1, 784], "datatype": "FP32", "data": []}]}""", "non-negative integers")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": ["a"]}]}""", "data must be numbers")]
    [InlineData("""{"inputs": []}""", "the request has 0 inputs")]
    [InlineData("""{"input": []}""", "needs an \"inputs\" array")]
    [InlineData("""[1, 2]""", "inference request object")]
    [InlineData("""{"inputs": [{"name": "input", "shape": [1, 784]""", "not valid JSON")]
    [InlineData("""{"id": 42, "inputs": []}""", "\"id\" must be a string")]
    public void Requests_this_model_cannot_take_are_refused_with_a_reason(string json, string reason)
    {
        var error = Assert.Throws<InputRejectedException>(() => InferenceProtocol.Parse(Body(json), 32));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Values_out_of_range_unknown_outputs_and_surplus_data_are_refused()
    {
        var outOfRange = Assert.Throws<InputRejectedException>(() => InferenceProtocol.Parse(Body($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{Flat(1, 2.0)}}]}]}"""), 32));
        Assert.Contains("image 0", outOfRange.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<InputRejectedException>(() => InferenceProtocol.Parse(Body($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{Flat(1)}}]}], "outputs": [{"name": "logits"}]}"""), 32));
        Assert.Contains("unknown output 'logits'", unknown.Message, StringComparison.Ordinal);
        var surplus = Assert.Throws<InputRejectedException>(() => InferenceProtocol.Parse(Body($$"""{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [{{Flat(2)}}]}]}"""), 32));
        Assert.Contains("more values than its shape (784)", surplus.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v2/health/live", true)]
    [InlineData("/v2/health/ready", true)]
    [InlineData("/v2/models/mnist/ready", true)]
    [InlineData("/healthz", true)]
    [InlineData("/v2/models/mnist/infer", false)]
    [InlineData("/v2/models/mnist", false)]
    [InlineData("/v1/predict", false)]
    public void Health_probes_are_exempt_from_the_address_limit_and_nothing_else_is(string path, bool exempt)
    {
        Assert.Equal(exempt, SecureMnist.Server.ClientAddressLimit.IsProbe(new Microsoft.AspNetCore.Http.PathString(path)));
    }

    [Fact]
    public void A_batch_over_the_cap_is_refused_from_its_shape_before_any_data_is_read()
    {
        // The shape claims a billion images and the data is empty: refused by the cap, without allocating for the claim.
        var error = Assert.Throws<BatchTooLargeException>(() => InferenceProtocol.Parse(Body("""{"inputs": [{"name": "input", "shape": [1000000000, 784], "datatype": "FP32", "data": []}]}"""), 32));
        Assert.Contains("at most 32", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>The protocol's routes on the real service over HTTP: health without a key, metadata and inference with one, errors as {"error": ...}.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class InferenceProtocolTests(ServedModel model)
{
    private static async Task<JsonElement> Json(HttpResponseMessage response) => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

    private static async Task AssertProtocolError(HttpResponseMessage response, HttpStatusCode status, string contains)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = await Json(response);
        Assert.Equal(JsonValueKind.Object, body.ValueKind);
        Assert.Equal(["error"], body.EnumerateObject().Select(p => p.Name));
        Assert.Contains(contains, body.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    private string InferBody(int[] indices, string? id = null, string? outputs = null)
    {
        var data = indices.SelectMany(model.TestPixels).ToArray();
        var request = new Dictionary<string, object> { ["inputs"] = new[] { new { name = "input", shape = new[] { indices.Length, 1, 28, 28 }, datatype = "FP32", data } } };
        if (id is not null) request["id"] = id;
        if (outputs is not null) request["outputs"] = outputs.Split(',').Select(name => new { name }).ToArray();
        return JsonSerializer.Serialize(request);
    }

    [Fact]
    public async Task Health_and_metadata_follow_the_protocol()
    {
        await using var service = await RunningService.Start(model.Options());
        Assert.Equal(HttpStatusCode.OK, (await service.Send(HttpMethod.Get, "/v2/health/live", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await service.Send(HttpMethod.Get, "/v2/health/ready", null)).StatusCode);
        Assert.Equal(SecureMnist.Server.Readiness.Ready, service.State.Readiness);
        Assert.Equal(HttpStatusCode.OK, (await service.Send(HttpMethod.Get, "/v2/models/mnist/ready", null)).StatusCode);
        await AssertProtocolError(await service.Send(HttpMethod.Get, "/v2/models/resnet/ready", null), HttpStatusCode.NotFound, "unknown model 'resnet'; this server serves 'mnist'");
        var server = await Json(await service.Send(HttpMethod.Get, "/v2", null));
        Assert.Equal("securemnist", server.GetProperty("name").GetString());
        Assert.Equal(0, server.GetProperty("extensions").GetArrayLength());

        await AssertProtocolError(await service.Send(HttpMethod.Get, "/v2/models/mnist", null), HttpStatusCode.Unauthorized, "API key is required");
        var metadata = await Json(await service.Send(HttpMethod.Get, "/v2/models/mnist", model.Secrets["user"]));
        Assert.Equal("mnist", metadata.GetProperty("name").GetString());
        Assert.Equal(service.State.ModelDigest, metadata.GetProperty("versions")[0].GetString());
        var input = metadata.GetProperty("inputs")[0];
        Assert.Equal("FP32", input.GetProperty("datatype").GetString());
        Assert.Equal([-1L, 1, 28, 28], input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(InferenceProtocol.OutputNames, metadata.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
        var labelOnly = await Json(await service.Send(HttpMethod.Get, "/v2/models/mnist", model.Secrets["label-only"]));
        Assert.Equal(["label", "decision"], labelOnly.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Inference_answers_as_v1_does_with_the_same_audit_and_the_protocol_response_shape()
    {
        await using var service = await RunningService.Start(model.Options());
        int[] indices = [0, 1, 2];
        var response = await service.PredictJson(InferBody(indices, id: "42"), model.Secrets["user"], "/v2/models/mnist/infer");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Json(response);
        Assert.Equal("mnist", body.GetProperty("model_name").GetString());
        Assert.Equal("42", body.GetProperty("id").GetString()); // "if specified this identifier must be returned in the response"
        var outputs = body.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
        Assert.Equal(InferenceProtocol.OutputNames.Order(), outputs.Keys.Order());
        Assert.Equal("INT64", outputs["label"].GetProperty("datatype").GetString());
        Assert.Equal([3L], outputs["label"].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal([3L, 10], outputs["probabilities"].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(30, outputs["probabilities"].GetProperty("data").GetArrayLength());
        var labels = outputs["label"].GetProperty("data").EnumerateArray().Select(d => d.GetInt32()).ToList();
        var decisions = outputs["decision"].GetProperty("data").EnumerateArray().Select(d => d.GetString()).ToList();
        for (var i = 0; i < indices.Length; i++)
        {
            var v1 = JsonDocument.Parse(await (await service.PredictJson(RunningService.PixelsJson(model.TestPixels(indices[i])), model.Secrets["user"])).Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(v1.GetProperty("label").GetInt32(), labels[i]);
            Assert.Equal(v1.GetProperty("decision").GetString(), decisions[i]);
        }
        var records = service.AuditRecords();
        Assert.Equal(6, records.Count); // three for the v2 batch, one per v1 request
        Assert.Equal(3, records.Count(r => r.RequestId == body.GetProperty("parameters").GetProperty("request_id").GetString()));

        var labelOnly = await Json(await service.PredictJson(InferBody([0]), model.Secrets["label-only"], "/v2/models/mnist/infer"));
        Assert.Equal(["label", "decision"], labelOnly.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
        Assert.Contains("label-only", labelOnly.GetProperty("parameters").GetProperty("withheld").GetString(), StringComparison.Ordinal);
        await AssertProtocolError(await service.PredictJson(InferBody([0], outputs: "probabilities"), model.Secrets["label-only"], "/v2/models/mnist/infer"),
            HttpStatusCode.Forbidden, "label-only");
    }

    [Fact]
    public async Task Every_error_on_the_protocol_routes_is_in_the_protocols_shape()
    {
        await using var service = await RunningService.Start(model.Options() with { MaxBatchItems = 4 });
        const string path = "/v2/models/mnist/infer";
        await AssertProtocolError(await service.PredictJson(InferBody([0]), null, path), HttpStatusCode.Unauthorized, "API key is required");
        await AssertProtocolError(await service.PredictJson(InferBody([0]), model.Secrets["admin"], path), HttpStatusCode.Forbidden, "scope");
        await AssertProtocolError(await service.PredictJson("{\"inputs\": 1}", model.Secrets["user"], path), HttpStatusCode.BadRequest, "\"inputs\" array");
        await AssertProtocolError(await service.PredictJson(InferBody([0, 1, 2, 3, 4]), model.Secrets["user"], path), HttpStatusCode.RequestEntityTooLarge, "at most 4");
        await AssertProtocolError(await service.PredictJson(InferBody([0]), model.Secrets["user"], "/v2/models/other/infer"), HttpStatusCode.NotFound, "unknown model 'other'");
        var png = new ByteArrayContent(ServedModel.Png(model.TestPixels(0)));
        png.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        await AssertProtocolError(await service.Send(HttpMethod.Post, path, model.Secrets["user"], png), HttpStatusCode.UnsupportedMediaType, "JSON");
        Assert.Equal(HttpStatusCode.OK, (await service.PredictJson(InferBody([0]), model.Secrets["slow"], path)).StatusCode); // one request a minute
        await AssertProtocolError(await service.PredictJson(InferBody([0]), model.Secrets["slow"], path), HttpStatusCode.TooManyRequests, "retry after");
    }

    [Fact]
    public async Task Each_decision_is_one_structured_log_event_beside_its_audit_record()
    {
        using var logs = new CapturedLogs();
        await using (var service = await RunningService.Start(model.Options(), logs: logs))
        {
            Assert.Equal(HttpStatusCode.OK, (await service.PredictJson(RunningService.PixelsJson(model.TestPixels(0)), model.Secrets["user"])).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await service.PredictJson(InferBody([1, 2, 3]), model.Secrets["label-only"], "/v2/models/mnist/infer")).StatusCode);
            var decisions = logs.Events.Where(e => e.Category == SecureMnist.Server.ServiceLog.Category && e.Event.Name == "Decision").ToList();
            var records = service.AuditRecords();
            Assert.Equal(records.Count, decisions.Count);
            Assert.Equal(4, decisions.Count);
            foreach (var (record, decision) in records.Zip(decisions))
            {
                Assert.Equal(record.RequestId, decision.Values["RequestId"]);
                Assert.Equal(record.KeyId, decision.Values["KeyId"]);
                Assert.Equal(record.Outcome, decision.Values["Outcome"]);
                Assert.IsType<double>(decision.Values["LatencyMs"]);
            }
            Assert.Contains(logs.Events, e => e.Event.Name == "Ready" && (string?)e.Values["ModelSha256"] == service.State.ModelDigest);
        }
    }
}
