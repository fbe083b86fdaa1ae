using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using SecureMnist.Serving;

namespace SecureMnist.Server;

public sealed record ReadyResponse(string Status, string Model, string Architecture, double AbstainBelow, string OnAdversarial, double SqueezeThreshold);

public sealed record ReloadResponse(string Model, string? Previous);

public sealed record AuditStatus(long Records, string Head, string Directory);

public static class OperationsEndpoints
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "alive" }));
        app.MapGet("/readyz", Ready);
        app.MapPost("/v1/admin/reload", Reload).RequireAuthorization(ApiScopes.Admin);
        app.MapGet("/v1/admin/audit", (ServiceState state) => TypedResults.Ok(new AuditStatus(state.Audit.Records, state.Audit.Head, state.Audit.Directory)))
            .RequireAuthorization(ApiScopes.Admin);
        return app;
    }

    private static async Task<Results<Ok<ReloadResponse>, ProblemHttpResult>> Reload(HttpContext context, ServiceState state, Microsoft.Extensions.Logging.ILoggerFactory loggers)
    {
        var previous = state.ModelDigest;
        if (await state.ReloadAsync().ConfigureAwait(false) is { } error)
        {
            var detail = $"the package was not loaded, the service keeps model {previous ?? "(none)"}: {error}";
            Decisions.Refused(context, "reload refused: " + error);
            return Problems.Create(StatusCodes.Status409Conflict, "Reload refused", detail);
        }
        Decisions.Describe(context, new Decision(Audit.AuditOutcome.Reloaded, Reason: $"model {previous} replaced by {state.ModelDigest}"));
        ServiceLog.Reloaded(loggers.CreateLogger(ServiceLog.Category), previous, state.ModelDigest!);
        return TypedResults.Ok(new ReloadResponse(state.ModelDigest!, previous));
    }

    private static Results<Ok<ReadyResponse>, ProblemHttpResult> Ready(ServiceState state)
    {
        if (state.Engine is not { } engine) return Problems.NotReady(state.NotReadyReason ?? "not ready");
        return TypedResults.Ok(new ReadyResponse("ready", engine.Model.ManifestSha256, engine.Model.Manifest.Architecture,
            engine.Policy.AbstainBelow, engine.Policy.OnAdversarial.ToString().ToLowerInvariant(), Math.Round(engine.Squeezing.Threshold, 6)));
    }

}
