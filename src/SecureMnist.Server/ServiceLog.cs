using Microsoft.Extensions.Logging;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>The service's operational log events (structured; written as JSON lines by <c>serve</c>), beside the audit log, which is the record of truth.</summary>
public static partial class ServiceLog
{
    public const string Category = "SecureMnist.Service";

    /// <summary>One event per decision: a keyed request's answer, or one item of a batch.</summary>
    [LoggerMessage(EventId = 1, EventName = "Decision", Level = LogLevel.Information,
        Message = "{Method} {Path} {Status} {Outcome} key={KeyId} label={Label} confidence={Confidence} latency={LatencyMs} ms request={RequestId} reason={Reason}")]
    public static partial void Decision(ILogger logger, string requestId, string? keyId, string method, string path, int status, AuditOutcome outcome, int? label,
        double? confidence, double latencyMs, string? reason);

    /// <summary>A refused request without a valid key: counted in the audit log per address and minute, so logged at Debug (a flood must not flood the log).</summary>
    [LoggerMessage(EventId = 2, EventName = "AnonymousRefusal", Level = LogLevel.Debug, Message = "{Method} {Path} {Status} {Outcome} from {Client}: {Reason}")]
    public static partial void AnonymousRefusal(ILogger logger, string method, string path, int status, AuditOutcome outcome, string? client, string reason);

    [LoggerMessage(EventId = 10, EventName = "Ready", Level = LogLevel.Information, Message = "ready: model {ModelSha256} ({Architecture}), squeezing threshold {SqueezeThreshold}")]
    public static partial void Ready(ILogger logger, string modelSha256, string architecture, double squeezeThreshold);

    [LoggerMessage(EventId = 11, EventName = "NotReady", Level = LogLevel.Error, Message = "not ready: {Reason}")]
    public static partial void NotReady(ILogger logger, string reason);

    [LoggerMessage(EventId = 12, EventName = "Reloaded", Level = LogLevel.Warning, Message = "model reloaded: {Previous} -> {Current}")]
    public static partial void Reloaded(ILogger logger, string? previous, string current);

    [LoggerMessage(EventId = 20, EventName = "QuotaStoreUnavailable", Level = LogLevel.Error, Message = "Redis, where the shared quotas live, cannot be reached ({Error}); failing {Mode}")]
    public static partial void QuotaStoreUnavailable(ILogger logger, RedisFailureMode mode, string error);

    [LoggerMessage(EventId = 21, EventName = "QuotaStoreRestored", Level = LogLevel.Warning, Message = "Redis reached again: quotas are shared across replicas")]
    public static partial void QuotaStoreRestored(ILogger logger);
}
