using SecureMnist.Reporting;

namespace SecureMnist.Assessment;

/// <summary>The profile's defended models, each trained, then attacked like the baseline.</summary>
public sealed class AdversarialTrainingStage : AssessmentStage
{
    public static readonly MetricKey CleanAccuracy = new($"{MetricKey.DefensePrefix}.clean_accuracy");
    public static readonly MetricKey TrainingSeconds = new($"{MetricKey.DefensePrefix}.training_seconds");
    public static readonly MetricKey KeptEpoch = new($"{MetricKey.DefensePrefix}.kept_epoch");

    public override string Name => "adversarial-training";
    public override IReadOnlyList<string> DependsOn => ["data"];
    public override IReadOnlyList<MetricKey> MetricKeys => [CleanAccuracy, TrainingSeconds, KeptEpoch, .. EvasionMeasurement.Keys(MetricKey.DefensePrefix)];
    public override object Inputs(StageContext context) => new { context.Profile.TrainSubset, context.Profile.Defenses, settings = EvasionMeasurement.Inputs(context.Profile) };

    /// <summary>The file name under which a defence's model package is kept.</summary>
    public static string ModelFile(string defense) => $"{MetricKey.DefensePrefixOf(defense)}_model";

    public override StageOutput Run(StageContext context, string directory) => PerDefense(context, recipe => Defend(context, directory, recipe));

    private static StageOutput Defend(StageContext context, string directory, DefenseRecipe recipe)
    {
        var metrics = new Dictionary<string, Metric>();
        var files = new Dictionary<string, string>();
        var trained = context.Train(recipe.Options(context.Profile.TrainSubset), context.Mnist, directory, recipe.Defense);
        trained.Training.Network.Dispose();
        var prefix = MetricKey.DefensePrefixOf(recipe.Defense);
        metrics[CleanAccuracy.For(recipe.Defense)] = Metric.Proportion(trained.Training.Test.Accuracy, context.Mnist.Test.Count, $"{recipe.Defense}-trained: clean test accuracy");
        metrics[TrainingSeconds.For(recipe.Defense)] = new(trained.Training.Record.Epochs.Sum(e => e.Seconds), "seconds", $"{recipe.Defense}-trained: training time");
        var record = trained.Training.Record;
        var robustByEpoch = record.RobustValidationByEpoch();
        if (robustByEpoch.Count > 0)
        {
            var robustCurve = Path.Combine(directory, $"{prefix}-robust-validation.png");
            var kept = record.SelectedEpoch ?? record.Options.Epochs;
            var series = new List<Series> { new("PGD", robustByEpoch.Select(p => ((double)p.Epoch, 100 * p.RobustValidationAccuracy)).ToList()) };
            var keptPoint = robustByEpoch.Where(p => p.Epoch == kept).Select(p => ((double)p.Epoch, 100 * p.RobustValidationAccuracy)).ToList();
            if (keptPoint.Count > 0) series.Add(new($"kept: epoch {kept}", keptPoint));
            LineChart.Save(robustCurve, $"{recipe.Defense}-trained: PGD-{record.Options.RobustValidationSteps} accuracy on {record.Options.RobustValidationSize} held-out images per epoch",
                "epoch", "accuracy (%)", series, 0, 100);
            files[$"{prefix}_robust_validation"] = robustCurve;
            metrics[KeptEpoch.For(recipe.Defense)] = Metric.Count(kept, $"{recipe.Defense}-trained: epoch whose weights were kept");
        }
        var (evasion, _) = EvasionMeasurement.Measure(context, directory, trained.PackageDirectory, prefix, $"{recipe.Defense}-trained");
        foreach (var (k, v) in evasion.Metrics) metrics[k] = v;
        foreach (var (k, v) in evasion.Files) files[k] = v;
        files[ModelFile(recipe.Defense)] = trained.PackageDirectory;
        return new(metrics, files, evasion.Details);
    }
}
