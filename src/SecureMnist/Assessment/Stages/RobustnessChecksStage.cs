using System.Globalization;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Evaluation;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;

namespace SecureMnist.Assessment;

/// <summary>
/// The gradient-masking checks on every defended model (<see cref="RobustnessChecks"/>), with the baseline as the independent model
/// that transfer attacks are crafted on: the evidence that a defended model's robust figure is not an artefact of masked gradients.
/// </summary>
public sealed class RobustnessChecksStage : AssessmentStage
{
    public static readonly MetricKey ChecksFailed = new($"{MetricKey.DefensePrefix}.masking_checks_failed");
    public static readonly MetricKey CheckImages = new($"{MetricKey.DefensePrefix}.masking_check_images");
    public static readonly MetricKey WhiteBoxAccuracy = new($"{MetricKey.DefensePrefix}.check_white_box_accuracy");
    public static readonly MetricKey AllAttacksAccuracy = new($"{MetricKey.DefensePrefix}.check_all_attacks_accuracy");
    public static readonly MetricKey AccuracyAtEpsilonOne = new($"{MetricKey.DefensePrefix}.accuracy_at_eps_1");
    public static readonly MetricKey SquareAccuracy = new($"{MetricKey.DefensePrefix}.square_accuracy");
    public static readonly MetricKey TransferAccuracy = new($"{MetricKey.DefensePrefix}.transfer_accuracy");
    public static readonly MetricKey StepChange = new($"{MetricKey.DefensePrefix}.long_run_change_points");
    public static readonly MetricKey ZeroGradientShare = new($"{MetricKey.DefensePrefix}.zero_gradient_share");

    public override string Name => "robustness-checks";
    public override IReadOnlyList<string> DependsOn => ["baseline", "adversarial-training"];
    public override IReadOnlyList<MetricKey> MetricKeys => [ChecksFailed, CheckImages, WhiteBoxAccuracy, AllAttacksAccuracy, AccuracyAtEpsilonOne, SquareAccuracy, TransferAccuracy, StepChange, ZeroGradientShare];
    public override object Inputs(StageContext context) => new { context.Profile.RobustnessCheckImages, context.Profile.RobustnessChecks };

    public override StageOutput Run(StageContext context, string directory) => PerDefense(context, recipe => Check(context, directory, recipe.Defense));

    private static StageOutput Check(StageContext context, string directory, string defense)
    {
        var options = context.Profile.RobustnessChecks with { Epsilon = context.Profile.Epsilon };
        using var model = ModelPackage.Load(context.FileOf("adversarial-training", AdversarialTrainingStage.ModelFile(defense)), context.Key.PublicKey);
        using var source = ModelPackage.Load(context.FileOf("baseline", "model"), context.Key.PublicKey);
        using var classifier = new NetworkClassifier(model.Network);
        using var sourceClassifier = new NetworkClassifier(source.Network);
        var test = context.Mnist.Test.Take(context.Profile.RobustnessCheckImages);
        var report = RobustnessChecks.Run(classifier, test, options, sourceClassifier, new InlineProgress<string>(m => context.Report($"{defense}-trained: {m}")), context.CancellationToken);
        var prefix = MetricKey.DefensePrefixOf(defense);
        var json = Path.Combine(directory, $"{prefix}-checks.json");
        JsonFormat.Save(json, new { options, report });
        var sweep = report.Checks.Single(c => c.Name == RobustnessCheck.EpsilonSweep).Figures
            .Select(kv => (double.Parse(kv.Key["accuracy_at_".Length..], CultureInfo.InvariantCulture), 100 * kv.Value)).ToList();
        var png = Path.Combine(directory, $"{prefix}-eps-sweep.png");
        LineChart.Save(png, $"{defense}-trained: APGD-CE accuracy against eps ({report.Images} test images)", "eps (L-inf)", "accuracy (%)", [new Series("APGD-CE", sweep)], 0, 100);

        double Figure(string check, string figure) => report.Checks.Single(c => c.Name == check).Figures.GetValueOrDefault(figure, double.NaN);
        var n = report.Images;
        var failed = report.Checks.Where(c => c.Passed == false).Select(c => c.Name).ToList();
        var metrics = new Dictionary<string, Metric>
        {
            [ChecksFailed.For(defense)] = Metric.Count(failed.Count, $"{defense}-trained: gradient-masking checks failed of {report.Checks.Count(c => c.Passed is not null)} run{(failed.Count > 0 ? $" ({string.Join(", ", failed)})" : "")}"),
            [CheckImages.For(defense)] = Metric.Count(n, $"{defense}-trained: test images the gradient-masking checks used"),
            [WhiteBoxAccuracy.For(defense)] = Metric.Proportion(report.WhiteBoxAccuracy, n, $"{defense}-trained: white-box worst case on the checked images ({report.WhiteBoxAttacks})"),
            [AllAttacksAccuracy.For(defense)] = Metric.Proportion(report.AllAttacksAccuracy, n,
                $"{defense}-trained: per-input worst case over every attack the checks ran at eps {report.Epsilon} (white box, {options.LongSteps} steps, {options.Restarts} restarts, Square, transfer)"),
            [AccuracyAtEpsilonOne.For(defense)] = Metric.Proportion(Figure(RobustnessCheck.EpsilonSweep, "accuracy_at_1"), n, $"{defense}-trained: APGD-CE accuracy at eps 1.0 (must be about 0)"),
            [SquareAccuracy.For(defense)] = Metric.Proportion(Figure(RobustnessCheck.BlackBoxGap, "square_accuracy"), n, $"{defense}-trained: accuracy under Square ({options.SquareQueries} queries, no gradients)"),
            [StepChange.For(defense)] = new(Figure(RobustnessCheck.StepConvergence, "change_points"), "count", $"{defense}-trained: accuracy drop in points from {options.Steps} to {options.LongSteps} APGD-CE steps"),
            [ZeroGradientShare.For(defense)] = Metric.Percent(Math.Max(Figure(RobustnessCheck.ZeroGradients, "zero_gradient_share_ce"), Figure(RobustnessCheck.ZeroGradients, "zero_gradient_share_dlr")),
                $"{defense}-trained: inputs with an all-zero CE or DLR gradient"),
        };
        var transfer = Figure(RobustnessCheck.Transfer, "transfer_accuracy");
        if (!double.IsNaN(transfer)) metrics[TransferAccuracy.For(defense)] = Metric.Proportion(transfer, n, $"{defense}-trained: accuracy under PGD-100 crafted on the baseline (transfer)");
        return new(metrics, new Dictionary<string, string> { [$"{prefix}_masking_checks"] = json, [$"{prefix}_eps_sweep"] = png },
            System.Text.Json.JsonSerializer.SerializeToNode(report, JsonFormat.Documents));
    }
}
