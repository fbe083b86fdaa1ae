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
    /// <summary>A request the API answered without a decision to describe (an admin read).</summary>
    Served,
    /// <summary>The service failed the request: an unhandled error (500), a timeout (504) or no capacity (503).</summary>
    Failed,
}

/// <summary>One decision of the service, as kept in the audit log.</summary>
/// <param name="InputSha256">SHA-256 of the request body as received (null when no body was read).</param>
/// <param name="ModelDigest">SHA-256 of the served package's manifest, which pins its weights.</param>
/// <param name="Client">The client's address, on records that aggregate refused unauthenticated requests.</param>
/// <param name="Count">How many requests an aggregated record stands for (null: exactly one).</param>
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
    string? Reason = null,
    string? Client = null,
    long? Count = null);
