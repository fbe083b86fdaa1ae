using SecureMnist.Audit;
using SecureMnist.Defenses;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>Everything the service is configured with; checked by <see cref="Validate"/> before it starts listening.</summary>
public sealed record ServiceOptions
{
    public required string ModelDirectory { get; init; }
    public required string PublicKeyPath { get; init; }
    /// <summary>
    /// The key-encryption key of a sealed model package: a file, or env:NAME for an environment variable holding it. Null: the
    /// SECUREMNIST_KEK variable when set. The weights are opened in memory only.
    /// </summary>
    public string? KekLocation { get; init; }
    public required string ApiKeysPath { get; init; }
    public required string AuditDirectory { get; init; }
    public required string AuditKeyPath { get; init; }
    /// <summary>Where the verified MNIST training set is read from, to calibrate the input checks and the detector.</summary>
    public required string DataRoot { get; init; }
    public string Urls { get; init; } = "http://127.0.0.1:8080";
    /// <summary>Operational logs on standard output: json (one JSON object per line, for collectors), simple (for people) or none.</summary>
    public ServiceLogFormat LogFormat { get; init; } = ServiceLogFormat.Json;
    /// <summary>The least severe operational log events written: Information gives one event per decision; Warning only problems.</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;
    /// <summary>Where the Prometheus metrics are served, on a listener of their own without a key (e.g. http://127.0.0.1:9464/metrics); null or empty: not served.</summary>
    public string? MetricsUrls { get; init; }
    /// <summary>
    /// Redis (HOST:PORT, or a StackExchange.Redis configuration string) that holds the per-key quotas every replica shares; null: each
    /// process keeps its own, so N replicas grant a key N quotas.
    /// </summary>
    public string? Redis { get; init; }
    /// <summary>What a replica does with keyed requests while Redis cannot be reached: closed (503) or open (this replica's own quotas).</summary>
    public RedisFailureMode RedisFailure { get; init; } = RedisFailureMode.Closed;
    /// <summary>
    /// This replica's name: its audit log is the folder of that name inside <see cref="AuditDirectory"/>, so replicas sharing a volume each
    /// keep their own hash chain. Null: the log is the audit folder itself, or, with <see cref="Redis"/>, the folder named by the host name.
    /// </summary>
    public string? ReplicaId { get; init; }
    /// <summary>The model's name on the Open Inference Protocol routes (/v2/models/NAME/...).</summary>
    public string ModelName { get; init; } = "mnist";
    public int MaxBodyBytes { get; init; } = 256 << 10;
    public int MaxBatchItems { get; init; } = 32;
    public double RequestTimeoutSeconds { get; init; } = 10;
    public int SqueezeCalibrationImages { get; init; } = 2000;
    public ImageLimits Images { get; init; } = new();
    public DecisionPolicy Policy { get; init; } = new();
    public BatchingOptions Batching { get; init; } = new();
    /// <summary>The number format while serving; Auto (the default) is bf16 on CPUs that compute it natively, fp32 elsewhere.</summary>
    public InferencePrecision Precision { get; init; } = InferencePrecision.Auto;
    public SqueezingOptions Squeezing { get; init; } = new();
    /// <summary>Per-key model-extraction monitoring (PRADA and two query-pattern signals) and what happens to a flagged key.</summary>
    public ExtractionMonitorOptions Extraction { get; init; } = new();
    public AuditLogOptions Audit { get; init; } = new();
    /// <summary>Requests per second one client address may send before authentication (a token bucket of one second's worth); 0 turns the limit off.</summary>
    public int RequestsPerSecondPerAddress { get; init; } = DefaultRequestsPerSecondPerAddress;

    public const int DefaultRequestsPerSecondPerAddress = 1000;
    /// <summary>How refused unauthenticated requests are aggregated in the audit log.</summary>
    public RefusalAggregation Refusals { get; init; } = new();

    /// <summary>Throws <see cref="ServiceConfigurationException"/> naming every setting that is out of range (the checks of <see cref="ServiceOptionsValidation"/>).</summary>
    public void Validate()
    {
        var result = new ServiceOptionsValidation().Validate(null, this);
        if (result.Failed) throw new ServiceConfigurationException([.. result.Failures]);
    }

    /// <summary>The checks of this record's own settings, not of its nested ones.</summary>
    public void ValidateOwn()
    {
        foreach (var (setting, name, value) in new[] { (nameof(ModelDirectory), "model", ModelDirectory), (nameof(PublicKeyPath), "public key", PublicKeyPath), (nameof(ApiKeysPath), "API keys", ApiKeysPath),
                     (nameof(AuditDirectory), "audit folder", AuditDirectory), (nameof(AuditKeyPath), "audit key", AuditKeyPath), (nameof(DataRoot), "data root", DataRoot) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"the {name} path is empty", setting);
        if (!Uri.TryCreate(Urls.Split(';')[0], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--urls '{Urls}' is not an http(s) URL", nameof(Urls));
        if (MetricsUrls is { Length: > 0 } metricsUrl)
        {
            if (!Uri.TryCreate(metricsUrl, UriKind.Absolute, out var metricsUri) || metricsUri.Scheme != "http" || metricsUri.Port <= 0 || metricsUrl.Contains(';', StringComparison.Ordinal))
                throw new ArgumentException($"the metrics listener '{metricsUrl}' must be one http URL with a port, e.g. http://127.0.0.1:9464/metrics", nameof(MetricsUrls));
            if (metricsUri.Port == uri.Port)
                throw new ArgumentException($"the metrics listener needs a port of its own, not the API's ({uri.Port})", nameof(MetricsUrls));
        }
        if (!System.Text.RegularExpressions.Regex.IsMatch(ModelName, "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))
            throw new ArgumentException($"the model name '{ModelName}' must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", nameof(ModelName));
        if (SharesQuotas) SharedQuota.ParseConfiguration(Redis!);
        if (ReplicaId is { Length: > 0 } && !System.Text.RegularExpressions.Regex.IsMatch(ReplicaId, "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))
            throw new ArgumentException($"the replica id '{ReplicaId}' must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit (it names a folder)", nameof(ReplicaId));
        if (MaxBodyBytes is < 1024 or > 64 << 20) throw new ArgumentOutOfRangeException(nameof(MaxBodyBytes), MaxBodyBytes, "the body cap must be 1 KiB to 64 MiB");
        if (MaxBatchItems is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(MaxBatchItems), MaxBatchItems, "the batch cap must be 1 to 1024 items");
        if (RequestTimeoutSeconds is <= 0 or > 600) throw new ArgumentOutOfRangeException(nameof(RequestTimeoutSeconds), RequestTimeoutSeconds, "the request timeout must be in (0, 600] seconds");
        if (SqueezeCalibrationImages is < 100 or > 60_000) throw new ArgumentOutOfRangeException(nameof(SqueezeCalibrationImages), SqueezeCalibrationImages, "calibration needs 100 to 60,000 images");
        if (RequestsPerSecondPerAddress is < 0 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(RequestsPerSecondPerAddress), RequestsPerSecondPerAddress, "the per-address rate must be 0 (off) to 1,000,000 requests per second");
    }

    /// <summary>The replica's name in effect: <see cref="ReplicaId"/>, or with Redis and none given, the host name (made safe for a folder name).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? EffectiveReplicaId => ReplicaId is { Length: > 0 } ? ReplicaId : SharesQuotas ? HostReplicaId() : null;

    /// <summary>True when a Redis address is set: the replicas share per-key quotas.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool SharesQuotas => !string.IsNullOrWhiteSpace(Redis);

    /// <summary>The folder this replica's audit log is written to.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string AuditLogDirectory => EffectiveReplicaId is { } replica ? Path.Combine(AuditDirectory, replica) : AuditDirectory;

    private static string HostReplicaId()
    {
        var safe = new string(Environment.MachineName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').Take(64).ToArray()).TrimStart('-', '_', '.');
        return safe.Length == 0 ? "replica" : safe;
    }

    /// <summary>Largest body of a batch request: one image's cap per item, bounded.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public long MaxBatchBodyBytes => Math.Min((long)MaxBodyBytes * MaxBatchItems, 64L << 20);
}

/// <summary>How <c>serve</c> writes its operational log.</summary>
public enum ServiceLogFormat
{
    Json,
    Simple,
    None,
}
