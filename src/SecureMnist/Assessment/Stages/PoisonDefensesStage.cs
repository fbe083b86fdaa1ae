using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.IO;
using SecureMnist.Security;
using SecureMnist.Training;
using SecureMnist.Attacks.Poisoning;

namespace SecureMnist.Assessment;

/// <summary>Poison detection on the poisoned training set, sanitizing and retraining, and STRIP on the backdoored model.</summary>
public sealed class PoisonDefensesStage : AssessmentStage
{
    public static readonly MetricKey DetectionCleanFlaggedTarget = new("detection.clean_flagged_target");
    public static readonly MetricKey DetectionPrecision = new("detection.precision");
    public static readonly MetricKey DetectionRecall = new("detection.recall");
    public static readonly MetricKey SanitizedAttackSuccessRate = new("sanitize.attack_success_rate");
    public static readonly MetricKey SanitizedCleanAccuracy = new("sanitize.clean_accuracy");
    public static readonly MetricKey SanitizeRemoved = new("sanitize.removed");
    public static readonly MetricKey StripFalsePositiveRate = new("strip.false_positive_rate");
    public static readonly MetricKey StripTruePositiveRate = new("strip.true_positive_rate");

    public override string Name => "poison-defenses";
    public override IReadOnlyList<string> DependsOn => ["poisoning"];
    public override IReadOnlyList<MetricKey> MetricKeys => [DetectionCleanFlaggedTarget, DetectionPrecision, DetectionRecall, SanitizedAttackSuccessRate, SanitizedCleanAccuracy, SanitizeRemoved, StripFalsePositiveRate, StripTruePositiveRate];
    public override object Inputs(StageContext context) => new { context.Profile.RunStrip, Detection, version = 2 };

    /// <summary>The poison detector's settings (the defaults of detect-poison); part of the stage's inputs.</summary>
    private static PoisonDetectionOptions Detection { get; } = new();

    public override StageOutput Run(StageContext context, string directory)
    {
        var data = new DatasetStore(context.Options.DataRoot).Load(context.FileOf("poisoning", "data"));
        var manifest = PoisonManifests.TryLoad(data.Directory)!;
        using var model = ModelPackage.Load(context.FileOf("poisoning", "model"), context.Key.PublicKey);
        context.Report($"poison detection ({PoisonDetector.MethodName(Detection.Method)}) over the training set");
        // The k-NN votes' trusted reference is the poisoned set's own test split, which the poisoning left clean (as detect-poison defaults to).
        var reference = PoisonDetector.NeedsReference(Detection.Method) ? data.Test : null;
        var detection = PoisonDetector.Detect(model.Network, data.Train, Detection, cancellationToken: context.CancellationToken, reference: reference)
            .ScoredAgainst(manifest, data.Train.Labels);
        JsonFormat.Save(Path.Combine(directory, PoisonDetectionReport.FileName), detection);
        var detectionPlot = Path.Combine(directory, "detection-scores.png");
        PoisonDetector.Plot(detection, detectionPlot);
        var score = detection.Score!;
        var metrics = new Dictionary<string, Metric>
        {
            [DetectionRecall.Name] = Metric.Percent(score.Recall, "poison detection recall (poisoned samples flagged)"),
            [DetectionPrecision.Name] = Metric.Percent(score.Precision, "poison detection precision"),
            [DetectionCleanFlaggedTarget.Name] = Metric.Percent(score.CleanFlaggedRateInTargetClass, $"clean samples of class {score.TargetClass} flagged"),
        };
        context.Report("sanitize: retraining without the flagged samples");
        var sanitized = SanitizeExperiment.Run(model, data, detection, Path.Combine(directory, "sanitized-data"), Path.Combine(directory, "sanitized"),
            Path.Combine(directory, "run-sanitized"), context.Key, resume: File.Exists(Path.Combine(directory, "run-sanitized", Checkpoint.StateFile)),
            progress: context.TrainingReporter("sanitized"), cancellationToken: context.CancellationToken);
        metrics[SanitizeRemoved.Name] = Metric.Count(sanitized.Removed, "training samples removed by sanitizing");
        metrics[SanitizedAttackSuccessRate.Name] = Metric.Percent(sanitized.After!.AttackSuccessRate, "backdoor attack success rate after sanitizing and retraining");
        metrics[SanitizedCleanAccuracy.Name] = Metric.Percent(sanitized.After.CleanAccuracy, "sanitized model: clean test accuracy");
        var files = new Dictionary<string, string> { ["detection"] = Path.Combine(directory, PoisonDetectionReport.FileName), ["detection_scores"] = detectionPlot };
        if (context.Profile.RunStrip)
        {
            context.Report("STRIP on the poisoned model");
            var strip = StripEvaluation.Run(model.Network, data.Test, manifest.Trigger!, manifest.TargetClass, new StripOptions());
            metrics[StripTruePositiveRate.Name] = Metric.Percent(strip.TruePositiveRate, "STRIP: triggered inputs flagged");
            metrics[StripFalsePositiveRate.Name] = Metric.Percent(strip.FalsePositiveRate, "STRIP: clean inputs flagged");
            var stripPlot = Path.Combine(directory, "strip-entropies.png");
            StripEvaluation.Plot(strip, stripPlot);
            files["strip_entropies"] = stripPlot;
        }
        return new(metrics, files);
    }
}
