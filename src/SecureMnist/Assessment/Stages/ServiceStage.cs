using SecureMnist.IO;

namespace SecureMnist.Assessment;

/// <summary>The service started on 127.0.0.1 with the baseline, and spoken to over HTTP (the check itself lives with the service).</summary>
public sealed class ServiceStage : AssessmentStage
{
    public static readonly MetricKey PredictStatus = new("service.predict_status");
    public static readonly MetricKey SmokeCorrect = new("service.smoke_correct");
    public static readonly MetricKey UnauthenticatedStatus = new("service.unauthenticated_status");
    public static readonly MetricKey LabelOnlyScores = new("service.label_only_scores");
    public static readonly MetricKey RateLimitedStatus = new("service.rate_limited_status");
    public static readonly MetricKey OversizedStatus = new("service.oversized_status");
    public static readonly MetricKey AdminWithPredictKeyStatus = new("service.admin_with_predict_key_status");
    public static readonly MetricKey AuditRecords = new("service.audit_records");
    public static readonly MetricKey AuditIntact = new("service.audit_intact");

    public override string Name => "service";
    public override IReadOnlyList<string> DependsOn => ["baseline"];
    public override IReadOnlyList<MetricKey> MetricKeys =>
        [PredictStatus, SmokeCorrect, UnauthenticatedStatus, LabelOnlyScores, RateLimitedStatus, OversizedStatus, AdminWithPredictKeyStatus, AuditRecords, AuditIntact];
    public override object Inputs(StageContext context) => new { version = 1 };

    public override StageOutput Run(StageContext context, string directory)
    {
        var publicKey = Path.Combine(directory, "signing.pub");
        AtomicFile.WriteAllText(publicKey, context.Key.PublicKey.ExportPem());
        context.Report("starting the service on 127.0.0.1 and speaking HTTP to it");
        var metrics = context.ServiceCheck(context.FileOf("baseline", "model"), publicKey, directory, context.Mnist, context.CancellationToken).GetAwaiter().GetResult();
        return new(metrics, new Dictionary<string, string>());
    }
}
