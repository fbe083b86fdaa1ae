namespace SecureMnist.Audit;

/// <summary>What the service decided about one request.</summary>
public enum AuditOutcome
{
    Accepted,
    Abstained,
    Flagged,
    Rejected,
    RateLimited,
    Unauthorized,
    /// <summary>An administrator switched the service to a newly verified model.</summary>
    Reloaded,
    /// <summary>Not a request: the log repaired itself after a crash (see the reason).</summary>
    Recovered,
}

/// <summary>One decision of the service, as kept in the audit log.</summary>
/// <param name="InputSha256">SHA-256 of the request body as received (null when no body was read).</param>
/// <param name="ModelDigest">SHA-256 of the served package's manifest, which pins its weights.</param>
public sealed record AuditRecord(
    DateTimeOffset Time,
    string RequestId,
    string? KeyId,
    string? InputSha256,
    string? ModelDigest,
    AuditOutcome Outcome,
    int? Label,
    double? Confidence,
    double LatencyMs,
    string? Reason = null);
