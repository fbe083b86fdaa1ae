using System.Security.Claims;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using SecureMnist.Audit;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>The protocol's error object: <c>{"error": "..."}</c>.</summary>
public sealed record ProtocolError([property: JsonPropertyName("error")] string Error);

public sealed record ServerMetadata(
    [property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("extensions")] IReadOnlyList<string> Extensions);

public sealed record ModelMetadata(
    [property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("versions")] IReadOnlyList<string> Versions,
    [property: JsonPropertyName("platform")] string Platform, [property: JsonPropertyName("inputs")] IReadOnlyList<TensorMetadata> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<TensorMetadata> Outputs);

public sealed record ResponseOutput(
    [property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape,
    [property: JsonPropertyName("datatype")] string Datatype, [property: JsonPropertyName("data")] object Data);

public sealed record InferenceResponse(
    [property: JsonPropertyName("model_name")] string ModelName, [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("parameters")] IReadOnlyDictionary<string, string> Parameters,
    [property: JsonPropertyName("outputs")] IReadOnlyList<ResponseOutput> Outputs);

/// <summary>
/// The Open Inference Protocol v2 (KServe, Triton, Seldon) on the same engine, keys, limits and audit log as /v1: health and
/// model-ready routes for probes without a key, metadata and inference with a predict key. Errors are the protocol's
/// <c>{"error": "..."}</c> (see <see cref="Problems.Write"/>, which speaks it on every /v2 route, middleware included).
/// </summary>
public static class InferenceProtocolEndpoints
{
    public const string Prefix = "/v2";

    /// <summary>Whether a request is on a protocol route, whose errors take the protocol's shape.</summary>
    public static bool Speaks(PathString path) => path.StartsWithSegments(Prefix, StringComparison.Ordinal);

    public static IEndpointRouteBuilder MapInferenceProtocol(this IEndpointRouteBuilder app)
    {
        app.MapGet(Prefix, () => TypedResults.Ok(new ServerMetadata("securemnist", typeof(InferenceProtocolEndpoints).Assembly.GetName().Version?.ToString() ?? "0", [])))
            .WithName("ServerMetadata");
        var v2 = app.MapGroup(Prefix);
        v2.MapGet("/health/live", () => TypedResults.Ok()).WithName("ServerLive");
        v2.MapGet("/health/ready", (ServiceState state) => Ready(state, null)).WithName("ServerReady");
        v2.MapGet("/models/{name}/ready", (ServiceState state, string name) => Ready(state, name)).WithName("ModelReady");
        var keyed = v2.MapGroup("/models").RequireAuthorization(ApiScopes.Predict).RequireRateLimiting(ServiceHost.PerKeyPolicy);
        keyed.MapGet("/{name}", Metadata).WithName("ModelMetadata");
        keyed.MapPost("/{name}/infer", Infer).WithName("ModelInfer");
        return app;
    }

    private static Results<Ok, JsonHttpResult<ProtocolError>> Ready(ServiceState state, string? name)
    {
        if (name is not null && name != state.Options.ModelName) return Error(StatusCodes.Status404NotFound, UnknownModel(state, name));
        return state.Engine is null ? Error(StatusCodes.Status400BadRequest, $"not ready: {state.NotReadyReason ?? "loading"}") : TypedResults.Ok();
    }

    private static Results<Ok<ModelMetadata>, JsonHttpResult<ProtocolError>> Metadata(HttpContext context, ServiceState state, string name)
    {
        if (name != state.Options.ModelName) return Refuse(context, StatusCodes.Status404NotFound, UnknownModel(state, name));
        if (state.Engine is not { } engine) return Refuse(context, StatusCodes.Status503ServiceUnavailable, $"not ready: {state.NotReadyReason ?? "loading"}");
        Decisions.Describe(context, new Decision(AuditOutcome.Served, Reason: "model metadata"));
        var outputs = LabelOnly(context) ? InferenceProtocol.OutputMetadata.Where(o => !InferenceProtocol.ScoreOutputs.Contains(o.Name)).ToList() : InferenceProtocol.OutputMetadata;
        return TypedResults.Ok(new ModelMetadata(name, [engine.Model.ManifestSha256], $"securemnist_{engine.Model.Manifest.Architecture}", [InferenceProtocol.InputMetadata], outputs));
    }

    private static async Task<Results<Ok<InferenceResponse>, JsonHttpResult<ProtocolError>>> Infer(HttpContext context, ServiceState state, KeyQuotas quotas, string name)
    {
        if (name != state.Options.ModelName) return Refuse(context, StatusCodes.Status404NotFound, UnknownModel(state, name));
        if (state.Engine is not { } engine) return Refuse(context, StatusCodes.Status503ServiceUnavailable, $"not ready: {state.NotReadyReason ?? "loading"}");
        var (body, tooLarge) = await RequestBody.Read(context, state.Options.MaxBatchBodyBytes).ConfigureAwait(false);
        if (tooLarge is not null) return Refuse(context, StatusCodes.Status413PayloadTooLarge, tooLarge.ProblemDetails.Detail ?? "the body is too large");
        Decisions.MarkInput(context, body);
        if (RequestBody.MediaType(context) is not ("application/json" or null))
            return Refuse(context, StatusCodes.Status415UnsupportedMediaType, "an inference request is JSON (Content-Type: application/json)");
        InferenceRequest request;
        try
        {
            request = InferenceProtocol.Parse(body, state.Options.MaxBatchItems);
        }
        catch (BatchTooLargeException e)
        {
            return Refuse(context, StatusCodes.Status413PayloadTooLarge, e.Message);
        }
        catch (InputRejectedException e)
        {
            return Refuse(context, StatusCodes.Status400BadRequest, e.Message);
        }
        if (await quotas.ChargeRest(context, request.Images.Count).ConfigureAwait(false) is { } refused)
        {
            if (refused.RetryAfter > TimeSpan.Zero) context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(refused.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Refuse(context, refused.Status, refused.Detail);
        }
        var labelOnly = LabelOnly(context);
        var withheld = labelOnly ? request.Outputs.Where(InferenceProtocol.ScoreOutputs.Contains).ToList() : [];
        if (withheld.Count > 0 && withheld.Count == request.Outputs.Count)
            return Refuse(context, StatusCodes.Status403Forbidden, $"this API key is label-only: it may not read {string.Join(", ", withheld)}");
        return await EngineCall.Run(context, state, async () =>
        {
            var predictions = await Task.WhenAll(request.Images.Select(image => engine.PredictAsync(image, explain: false, context.RequestAborted))).ConfigureAwait(false);
            return Respond(context, state, name, request, withheld, predictions);
        }, (status, _, detail) => (Results<Ok<InferenceResponse>, JsonHttpResult<ProtocolError>>)Refuse(context, status, detail)).ConfigureAwait(false);
    }

    private static Results<Ok<InferenceResponse>, JsonHttpResult<ProtocolError>> Respond(
        HttpContext context, ServiceState state, string name, InferenceRequest request, IReadOnlyList<string> withheld, Prediction[] predictions)
    {
        if (predictions.Length == 1 && predictions[0].Outcome == AuditOutcome.Rejected)
        {
            Decisions.Describe(context, new Decision(AuditOutcome.Rejected, Reason: ServiceState.WithExtraction(predictions[0].Reason, state.ObserveForExtraction(context, request.Images[0], predictions[0]))));
            return Error(StatusCodes.Status422UnprocessableEntity, $"input rejected: {predictions[0].Reason}");
        }
        for (var i = 0; i < predictions.Length; i++)
        {
            var p = predictions[i];
            Decisions.Describe(context, new Decision(p.Outcome, p.Label, p.Confidence, ServiceState.WithExtraction(p.Reason, state.ObserveForExtraction(context, request.Images[i], p))));
        }
        var outputs = request.Outputs.Where(o => !withheld.Contains(o)).Select(o => Output(o, predictions)).ToList();
        var parameters = new Dictionary<string, string> { ["request_id"] = context.TraceIdentifier, ["model_sha256"] = state.ModelDigest ?? "" };
        if (withheld.Count > 0) parameters["withheld"] = $"{string.Join(", ", withheld)} (label-only key)";
        return TypedResults.Ok(new InferenceResponse(name, request.Id ?? context.TraceIdentifier, parameters, outputs));
    }

    /// <summary>One named output over the batch; a rejected item has label -1, confidence 0 and zero probabilities, and says so in "decision".</summary>
    private static ResponseOutput Output(string name, IReadOnlyList<Prediction> predictions)
    {
        long n = predictions.Count;
        return name switch
        {
            InferenceProtocol.Label => new(name, [n], "INT64", predictions.Select(p => (long)(p.Label ?? -1)).ToArray()),
            InferenceProtocol.Decision => new(name, [n], "BYTES", predictions.Select(p => p.Outcome.ToString().ToLowerInvariant()).ToArray()),
            InferenceProtocol.Confidence => new(name, [n], "FP32", predictions.Select(p => (float)Math.Round(p.Confidence, 6)).ToArray()),
            InferenceProtocol.Probabilities => new(name, [n, 10], "FP32", predictions.SelectMany(p => p.Probabilities.Count == 10 ? p.Probabilities : new float[10]).ToArray()),
            _ => throw new InvalidOperationException($"unknown output {name}"),
        };
    }

    private static bool LabelOnly(HttpContext context) => context.User.FindFirstValue(ApiKeyAuthentication.LabelOnlyClaim) == "true";

    private static string UnknownModel(ServiceState state, string name) => $"unknown model '{name}'; this server serves '{state.Options.ModelName}'";

    private static JsonHttpResult<ProtocolError> Error(int status, string message) => TypedResults.Json(new ProtocolError(message), statusCode: status);

    private static JsonHttpResult<ProtocolError> Refuse(HttpContext context, int status, string message)
    {
        Decisions.Refused(context, message);
        return Error(status, message);
    }
}
