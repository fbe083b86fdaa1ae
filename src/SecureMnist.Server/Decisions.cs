using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>What a handler decided about a request (or about one item of a batch).</summary>
public sealed record Decision(AuditOutcome Outcome, int? Label = null, double? Confidence = null, string? Reason = null, string? InputSha256 = null);

/// <summary>
/// How handlers, the authentication handler and the limiters describe a request for the audit trail. They only describe;
/// <see cref="AuditTrail"/> alone writes, once per response. Start time, input digest, decisions and the refusal reason
/// travel in the request's items.
/// </summary>
public static class Decisions
{
    private const string StartKey = "securemnist.start";
    private const string InputKey = "securemnist.input-sha256";
    private const string DecisionsKey = "securemnist.decisions";
    private const string ReasonKey = "securemnist.reason";

    public static void MarkStart(HttpContext context) => context.Items[StartKey] = Stopwatch.GetTimestamp();

    public static void MarkInput(HttpContext context, ReadOnlySpan<byte> body) => context.Items[InputKey] = Convert.ToHexStringLower(SHA256.HashData(body));

    /// <summary>Adds a decision (one per request, or one per batch item, in order).</summary>
    public static void Describe(HttpContext context, Decision decision)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Items[DecisionsKey] is not List<Decision> list) context.Items[DecisionsKey] = list = [];
        list.Add(decision);
    }

    /// <summary>Why the request was refused; the outcome follows from the status code.</summary>
    public static void Refused(HttpContext context, string? reason)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Items[ReasonKey] = reason;
    }

    internal static IReadOnlyList<Decision> Described(HttpContext context) => context.Items[DecisionsKey] as List<Decision> ?? [];

    internal static string? Reason(HttpContext context) => context.Items[ReasonKey] as string;

    internal static string? Input(HttpContext context) => context.Items[InputKey] as string;

    internal static double ElapsedMilliseconds(HttpContext context) =>
        context.Items[StartKey] is long start ? Stopwatch.GetElapsedTime(start).TotalMilliseconds : 0;
}
