using System.Security.Claims;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>
/// The one writer of the audit log for API requests (every endpoint that needs a key): when the response starts, whatever
/// its status (a decision, 4xx, 429, 5xx from an unhandled error or a timeout), it writes the described decisions, or
/// one record inferred from the status, and waits until they are durable. Refused unauthenticated requests (401, and
/// 429 from the per-address limit, which runs before authentication) are counted by the <see cref="RefusalAggregator"/>
/// instead: one record per address and window.
/// </summary>
public sealed class AuditTrail(RequestDelegate next, ServiceState state, ServiceMetrics metrics, Microsoft.Extensions.Logging.ILoggerFactory loggers)
{
    private readonly Microsoft.Extensions.Logging.ILogger log = loggers.CreateLogger(ServiceLog.Category);

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GetEndpoint()?.Metadata.GetMetadata<IAuthorizeData>() is null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }
        context.Response.OnStarting(() => Write(context));
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Decisions.Refused(context, $"the request failed ({e.GetType().Name})");
            throw;
        }
    }

    private Task Write(HttpContext context)
    {
        var status = context.Response.StatusCode;
        var elapsed = Decisions.ElapsedMilliseconds(context);
        var keyId = context.User.FindFirstValue(ApiKeyAuthentication.KeyIdClaim);
        var reason = Decisions.Reason(context) ?? $"HTTP {status}";
        if (keyId is null && status is StatusCodes.Status401Unauthorized or StatusCodes.Status429TooManyRequests)
        {
            var outcome = status == StatusCodes.Status401Unauthorized ? AuditOutcome.Unauthorized : AuditOutcome.RateLimited;
            metrics.Record(outcome, elapsed / 1000);
            ServiceLog.AnonymousRefusal(log, context.Request.Method, context.Request.Path, status, outcome, context.Connection.RemoteIpAddress?.ToString(), reason);
            state.Refusals.Count(context.Connection.RemoteIpAddress?.ToString(), outcome, reason, state.ModelDigest);
            return Task.CompletedTask;
        }
        var described = Decisions.Described(context);
        IReadOnlyList<Decision> decisions = described.Count > 0 && status < 500 ? described : [new Decision(OutcomeOf(status), Reason: reason)];
        var input = Decisions.Input(context);
        var appends = new List<Task>(decisions.Count);
        foreach (var d in decisions)
        {
            metrics.Record(d.Outcome, elapsed / 1000);
            ServiceLog.Decision(log, context.TraceIdentifier, keyId, context.Request.Method, context.Request.Path, status, d.Outcome, d.Label,
                d.Confidence is { } confidence ? Math.Round(confidence, 6) : null, Math.Round(elapsed, 3), d.Reason);
            appends.Add(state.Audit.AppendAsync(new AuditRecord(DateTimeOffset.UtcNow, context.TraceIdentifier, keyId, d.InputSha256 ?? input, state.ModelDigest,
                d.Outcome, d.Label, d.Confidence is { } c ? Math.Round(c, 6) : null, Math.Round(elapsed, 3), d.Reason)));
        }
        return Task.WhenAll(appends);
    }

    /// <summary>The outcome a status code stands for when no handler described the request.</summary>
    public static AuditOutcome OutcomeOf(int status) => status switch
    {
        StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden => AuditOutcome.Unauthorized,
        StatusCodes.Status429TooManyRequests => AuditOutcome.RateLimited,
        >= 500 => AuditOutcome.Failed,
        >= 400 => AuditOutcome.Rejected,
        _ => AuditOutcome.Served,
    };
}
