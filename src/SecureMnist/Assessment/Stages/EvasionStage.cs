using System.Text.Json;
using SecureMnist.Attacks.Evasion;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;

namespace SecureMnist.Assessment;

/// <summary>The baseline under attack: its robustness curve, and the per-input worst case of the profile's attacks.</summary>
public sealed class EvasionStage : AssessmentStage
{
    public static readonly MetricKey CleanAccuracyAttackedSubset = new("baseline.clean_accuracy_attacked_subset");

    public override string Name => "evasion";
    public override IReadOnlyList<string> DependsOn => ["baseline"];
    public override IReadOnlyList<MetricKey> MetricKeys => [.. EvasionMeasurement.Keys("baseline"), CleanAccuracyAttackedSubset];
    public override object Inputs(StageContext context) => EvasionMeasurement.Inputs(context.Profile);

    public override StageOutput Run(StageContext context, string directory)
    {
        var (output, report) = EvasionMeasurement.Measure(context, directory, context.FileOf("baseline", "model"), "baseline", "baseline");
        var metrics = output.Metrics.ToDictionary();
        metrics[CleanAccuracyAttackedSubset.Name] = Metric.Proportion(report.CleanAccuracy, report.Images, "baseline: clean accuracy on the attacked images");
        return output with { Metrics = metrics };
    }
}

/// <summary>Clean, FGSM, PGD and worst-case accuracy of one model, its curve and example grid: the evasion stage's work, for any model.</summary>
public static class EvasionMeasurement
{
    private static readonly string[] Suffixes = ["attack_images", "fgsm_accuracy", "pgd_accuracy", "worst_case_accuracy", "attack_success_rate", "median_l2"];

    /// <summary>The metric keys of one measured model; <paramref name="prefix"/> is "baseline" or <see cref="MetricKey.DefensePrefix"/>.</summary>
    public static IReadOnlyList<MetricKey> Keys(string prefix) => Suffixes.Select(s => new MetricKey($"{prefix}.{s}")).ToList();

    public static object Inputs(AssessmentProfile profile) =>
        new { profile.AttackImages, profile.Epsilon, profile.PgdSteps, profile.PgdStepSize, profile.Restarts, profile.WorstCaseAttacks, profile.CurveEpsilons };

    /// <summary><paramref name="prefix"/> keys the metrics and files, <paramref name="model"/> names the model in labels and pictures; the
    /// report is the worst-case run's, for figures a caller adds.</summary>
    public static (StageOutput Output, RobustnessReport Report) Measure(StageContext context, string directory, string package, string prefix, string model)
    {
        var profile = context.Profile;
        var settings = context.Settings;
        using var loaded = ModelPackage.Load(package, context.Key.PublicKey);
        using var classifier = new NetworkClassifier(loaded.Network);
        var test = context.Mnist.Test.Take(profile.AttackImages);
        context.Report($"{model}: robustness curve over eps {string.Join(", ", profile.CurveEpsilons)}");
        string[] curveAttacks = ["fgsm", "pgd"];
        var measured = RobustnessCurve.MeasureInputs(classifier, test, profile.CurveEpsilons, curveAttacks, settings,
            new InlineProgress<string>(m => context.Report($"{model}: {m}")), context.CancellationToken);
        var curve = measured.Points;
        var attacks = AttackCatalog.Parse(string.Join(",", profile.WorstCaseAttacks), settings);
        context.Report($"{model}: worst case of {string.Join(", ", attacks.Select(a => a.Name))}");
        var run = AttackEvaluator.Run(classifier, test, attacks, progress: new InlineProgress<AttackProgress>(p =>
            context.Report($"{model}: {p.Attack} ({p.AttackIndex}/{p.Attacks}) on the {p.Total} inputs still robust: {p.Done} done")), cancellationToken: context.CancellationToken);
        var grid = Path.Combine(directory, $"{prefix}-adversarial.png");
        AdversarialGrid.Save(grid, test, run);
        double At(string attack) => curve.Single(p => p.Attack == attack && Math.Abs(p.Epsilon - profile.Epsilon) < 1e-9).Accuracy;
        // The curve's FGSM and PGD runs at this eps used other random starts: an input any of the runs broke counts as broken.
        var curveAtEpsilon = measured.RobustUnderAll.Single(kv => Math.Abs(kv.Key - profile.Epsilon) < 1e-9).Value;
        var worstCase = RobustnessRun.WorstCaseAccuracy([run.Robust(), curveAtEpsilon]);
        var curvePng = Path.Combine(directory, $"{prefix}-robustness.png");
        var series = curve.GroupBy(p => p.Attack)
            .Select(g => new Series(g.Key == RobustnessCurve.WorstCase ? $"worst of {string.Join(", ", curveAttacks)}" : g.Key, g.Select(p => (p.Epsilon, 100 * p.Accuracy)).ToList())).ToList();
        // The stronger attacks run at the assessed eps only: their worst case is one point, which the curve must not hide.
        series.Add(new($"worst of {attacks.Count} attacks and the curve's", [(profile.Epsilon, 100 * worstCase)]));
        LineChart.Save(curvePng, $"{model}: accuracy against eps ({test.Count} test images)", "eps (L-inf)", "accuracy (%)", series, 0, 100);
        var report = run.Report;
        var metrics = new Dictionary<string, Metric>
        {
            [$"{prefix}.attack_images"] = Metric.Count(test.Count, $"{model}: test images attacked"),
            [$"{prefix}.fgsm_accuracy"] = Metric.Proportion(At("fgsm"), test.Count, $"{model}: accuracy under FGSM, eps {profile.Epsilon}"),
            [$"{prefix}.pgd_accuracy"] = Metric.Proportion(At("pgd"), test.Count, $"{model}: accuracy under PGD-{profile.PgdSteps} (alpha {profile.PgdStepSize}, random start), eps {profile.Epsilon}"),
            [$"{prefix}.worst_case_accuracy"] = Metric.Proportion(worstCase, test.Count,
                $"{model}: accuracy under the strongest evaluation (per-input worst case of {string.Join(", ", attacks.Select(a => a.Name))} and the curve's separate FGSM and PGD runs), eps {profile.Epsilon}"),
            [$"{prefix}.attack_success_rate"] = Metric.Percent(report.AttackSuccessRate, $"{model}: attack success rate on correctly classified inputs"),
            [$"{prefix}.median_l2"] = new(report.Perturbation.MedianL2, "ratio", $"{model}: median L2 of successful perturbations"),
        };
        return (new(metrics, new Dictionary<string, string> { [$"{prefix}_grid"] = grid, [$"{prefix}_curve"] = curvePng },
            JsonSerializer.SerializeToNode(new { curve, report }, JsonFormat.Documents)), report);
    }
}
