using System.Diagnostics;
using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>
/// Writes every decision of the service to the audit log (awaited, so the record is durable before the response) and
/// to the metrics. Request start time and input digest travel in the request's items.
/// </summary>
public sealed class Decisions(ServiceState state, ServiceMetrics metrics)
{
    private const string StartKey = "securemnist.start";
    private const string InputKey = "securemnist.input-sha256";

    public static void MarkStart(HttpContext context) => context.Items[StartKey] = Stopwatch.GetTimestamp();

    public static void MarkInput(HttpContext context, ReadOnlySpan<byte> body) => context.Items[InputKey] = Convert.ToHexStringLower(SHA256.HashData(body));

    public async Task Record(HttpContext context, AuditOutcome outcome, int? label = null, double? confidence = null, string? reason = null, string? inputSha256 = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var elapsed = context.Items.TryGetValue(StartKey, out var start) && start is long timestamp
            ? Stopwatch.GetElapsedTime(timestamp).TotalMilliseconds : 0;
        var record = new AuditRecord(DateTimeOffset.UtcNow, context.TraceIdentifier, context.User.FindFirstValue(ApiKeyAuthentication.KeyIdClaim),
            inputSha256 ?? (context.Items.TryGetValue(InputKey, out var input) ? input as string : null), state.ModelDigest, outcome, label,
            confidence is { } c ? Math.Round(c, 6) : null, Math.Round(elapsed, 3), reason);
        metrics.Record(outcome, elapsed / 1000);
        await state.Audit.AppendAsync(record).ConfigureAwait(false);
    }
}
