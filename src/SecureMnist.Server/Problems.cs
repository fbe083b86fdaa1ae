using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace SecureMnist.Server;

/// <summary>The service's error answers, all <c>application/problem+json</c> with a message a caller can act on.</summary>
public static class Problems
{
    public static ProblemHttpResult Create(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);

    public static ProblemHttpResult BadInput(string detail) => Create(StatusCodes.Status400BadRequest, "Invalid input", detail);

    /// <summary>429 for a key whose quota (counted in images) cannot pay for this request, with Retry-After when waiting helps.</summary>
    public static ProblemHttpResult QuotaExhausted(HttpContext context, string detail, TimeSpan retryAfter)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (retryAfter > TimeSpan.Zero) context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Create(StatusCodes.Status429TooManyRequests, "Too many requests", detail);
    }

    public static ProblemHttpResult TooLarge(string detail) => Create(StatusCodes.Status413PayloadTooLarge, "Request body too large", detail);

    public static ProblemHttpResult UnsupportedType(string detail) => Create(StatusCodes.Status415UnsupportedMediaType, "Unsupported content type", detail);

    public static ProblemHttpResult NotReady(string detail) => Create(StatusCodes.Status503ServiceUnavailable, "Not ready", detail);

    /// <summary>Writes a problem directly to the response, for middleware that runs outside endpoints. On the Open Inference Protocol's
    /// routes it is the protocol's <c>{"error": "..."}</c> instead, so a KServe or Triton client can read it.</summary>
    public static Task Write(HttpContext context, int status, string title, string detail)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = status;
        if (InferenceProtocolEndpoints.Speaks(context.Request.Path))
            return context.Response.WriteAsJsonAsync(new ProtocolError(detail));
        return context.Response.WriteAsJsonAsync(
            new Microsoft.AspNetCore.Mvc.ProblemDetails { Status = status, Title = title, Detail = detail, Instance = context.Request.Path },
            options: null, contentType: "application/problem+json");
    }
}
