using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using SecureMnist.Audit;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>One answer as sent to a caller. Label-only keys get no confidence, probabilities, scores or saliency.</summary>
public sealed record PredictResponse(
    string RequestId, string Decision,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Label,
    string? Reason, string Model,
    double? Confidence = null, IReadOnlyList<float>? Probabilities = null, double? SqueezeScore = null, IReadOnlyList<float>? Saliency = null);

public sealed record BatchResponse(string RequestId, IReadOnlyList<PredictResponse> Items);

public static class PredictEndpoints
{
    public static IEndpointRouteBuilder MapPredict(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1").RequireAuthorization(ApiScopes.Predict).RequireRateLimiting(ServiceHost.PerKeyPolicy);
        api.MapPost("/predict", Predict);
        api.MapPost("/predict/batch", PredictBatch);
        return app;
    }

    private static async Task<Results<Ok<PredictResponse>, ProblemHttpResult>> Predict(HttpContext context, ServiceState state, bool? explain)
    {
        if (state.Engine is not { } engine) return Refuse(context, Problems.NotReady(state.NotReadyReason ?? "not ready"));
        var (body, tooLarge) = await RequestBody.Read(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
        if (tooLarge is not null) return Refuse(context, tooLarge);
        Decisions.MarkInput(context, body);
        float[] pixels;
        try
        {
            pixels = RequestBody.MediaType(context) switch
            {
                "image/png" or "image/jpeg" => DigitImage.Decode(body, state.Options.Images),
                "application/json" => PredictRequest.Pixels(body),
                var other => throw new UnsupportedMediaException(other),
            };
        }
        catch (UnsupportedMediaException e)
        {
            return Refuse(context, Problems.UnsupportedType(e.Message));
        }
        catch (InputRejectedException e)
        {
            return Refuse(context, Problems.BadInput(e.Message));
        }
        return await Decide<PredictResponse>(context, state, async () =>
        {
            var prediction = await engine.PredictAsync(pixels, explain == true, context.RequestAborted).ConfigureAwait(false);
            var extraction = state.ObserveForExtraction(context, pixels, prediction);
            Decisions.Describe(context, new Decision(prediction.Outcome, prediction.Label, prediction.Confidence, ServiceState.WithExtraction(prediction.Reason, extraction)));
            if (prediction.Outcome == AuditOutcome.Rejected)
                return Problems.Create(StatusCodes.Status422UnprocessableEntity, "Input rejected", prediction.Reason ?? "rejected");
            return TypedResults.Ok(Respond(context, state, prediction));
        }).ConfigureAwait(false);
    }

    /// <summary>Runs the model part of a request; a full queue becomes 503 and a timeout 504 (<see cref="EngineCall"/>).</summary>
    private static Task<Results<Ok<T>, ProblemHttpResult>> Decide<T>(HttpContext context, ServiceState state, Func<Task<Results<Ok<T>, ProblemHttpResult>>> work) =>
        EngineCall.Run(context, state, work, (status, title, detail) => (Results<Ok<T>, ProblemHttpResult>)Refuse(context, Problems.Create(status, title, detail)));

    private static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> PredictBatch(HttpContext context, ServiceState state, KeyQuotas quotas)
    {
        if (state.Engine is not { } engine) return Refuse(context, Problems.NotReady(state.NotReadyReason ?? "not ready"));
        var (body, tooLarge) = await RequestBody.Read(context, state.Options.MaxBatchBodyBytes).ConfigureAwait(false);
        if (tooLarge is not null) return Refuse(context, tooLarge);
        Decisions.MarkInput(context, body);
        if (RequestBody.MediaType(context) != "application/json")
            return Refuse(context, Problems.UnsupportedType("a batch is JSON: {\"items\": [{\"pixels\": [784 values]}, ...]}"));
        IReadOnlyList<BatchItem> items;
        try
        {
            items = PredictRequest.BatchItems(body, state.Options.MaxBatchItems);
        }
        catch (BatchTooLargeException e)
        {
            return Refuse(context, Problems.TooLarge(e.Message));
        }
        catch (InputRejectedException e)
        {
            return Refuse(context, Problems.BadInput(e.Message));
        }
        if (await quotas.ChargeRest(context, items.Count).ConfigureAwait(false) is { } refused)
            return Refuse(context, refused.Status == StatusCodes.Status413PayloadTooLarge ? Problems.TooLarge(refused.Detail) : Problems.QuotaExhausted(context, refused.Detail, refused.RetryAfter));
        return await Decide<BatchResponse>(context, state, async () =>
        {
            var pending = items.Select(item => item.Pixels is null
                ? Task.FromResult(new Prediction(AuditOutcome.Rejected, null, 0, [], null, null, item.Error))
                : engine.PredictAsync(item.Pixels, explain: false, context.RequestAborted)).ToList();
            var predictions = await Task.WhenAll(pending).ConfigureAwait(false);
            var responses = new List<PredictResponse>(predictions.Length);
            for (var i = 0; i < predictions.Length; i++)
            {
                var p = predictions[i];
                var extraction = items[i].Pixels is { } itemPixels ? state.ObserveForExtraction(context, itemPixels, p) : null;
                Decisions.Describe(context, new Decision(p.Outcome, p.Label, p.Confidence, ServiceState.WithExtraction(p.Reason, extraction), items[i].Sha256));
                responses.Add(Respond(context, state, p) with { RequestId = $"{context.TraceIdentifier}/{i}" });
            }
            return TypedResults.Ok(new BatchResponse(context.TraceIdentifier, responses));
        }).ConfigureAwait(false);
    }

    private static PredictResponse Respond(HttpContext context, ServiceState state, Prediction p)
    {
        var decision = p.Outcome.ToString().ToLowerInvariant();
        var response = new PredictResponse(context.TraceIdentifier, decision, p.Label, p.Reason, state.ModelDigest ?? "");
        if (context.User.FindFirstValue(ApiKeyAuthentication.LabelOnlyClaim) == "true") return response;
        return response with { Confidence = Math.Round(p.Confidence, 6), Probabilities = p.Probabilities.Count == 0 ? null : p.Probabilities, SqueezeScore = p.SqueezeScore, Saliency = p.Saliency };
    }

    /// <summary>Notes why the request was refused (the audit trail records it), then returns the problem.</summary>
    private static ProblemHttpResult Refuse(HttpContext context, ProblemHttpResult problem)
    {
        Decisions.Refused(context, problem.ProblemDetails.Detail);
        return problem;
    }
}

internal sealed class UnsupportedMediaException(string? mediaType)
    : Exception($"content type '{mediaType ?? "(none)"}' is not accepted; send image/png, image/jpeg or application/json {{\"pixels\": [784 values in [0, 1]]}}");

/// <summary>Reads and parses request bodies within their caps.</summary>
internal static class RequestBody
{
    public static string? MediaType(HttpContext context) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var type) ? type.MediaType.Value?.ToLowerInvariant() : null;

    /// <summary>The body, or a 413 problem when it exceeds <paramref name="cap"/> bytes (checked before reading when the length is declared).</summary>
    public static async Task<(byte[] Body, ProblemHttpResult? TooLarge)> Read(HttpContext context, long cap)
    {
        var declared = context.Request.ContentLength;
        ProblemHttpResult Large() => Problems.TooLarge($"the body is over the {cap:N0} byte limit");
        if (declared > cap) return ([], Large());
        using var buffer = new MemoryStream();
        var chunk = new byte[16 << 10];
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > cap) return ([], Large());
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], Large());
        }
        return (buffer.ToArray(), null);
    }
}
