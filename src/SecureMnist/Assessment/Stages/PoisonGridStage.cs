using System.Text.Json.Nodes;
using SecureMnist.Evaluation.PoisonBench;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>
/// Threat T1 beyond one friendly scenario: the quick poisoning grid's headline (<c>poison-bench --grid quick</c>). Per detector it quotes
/// the worst and the median cell by recall (never the best) and the clean control's false alarms; for STRIP the worst TPR per blend;
/// and the share of cells at rates of 1% and more where the default detector meets its rule. The full profile runs the grid (about half
/// an hour here); the quick profile only reads it from the grid's cache (<c>out/poison-bench/quick/cache</c> beside the assessment's
/// folder), which <c>./securemnist poison-bench</c> fills, and leaves the figures out until every cell is there.
/// </summary>
public sealed class PoisonGridStage : AssessmentStage
{
    public static readonly MetricKey Cells = new("poison_grid.cells");
    public static readonly MetricKey DefaultRuleShare = new("poison_grid.default_rule_share");
    public static readonly MetricKey StripAddWorst = new("poison_grid.strip_add_worst_tpr");
    public static readonly MetricKey StripAlphaWorst = new("poison_grid.strip_alpha_worst_tpr");

    /// <summary>The detectors' keys: worst and median recall, and flags on the clean control, per method.</summary>
    public static IReadOnlyList<MetricKey> DetectorKeys { get; } =
        [.. CellExperiment.Methods.Select(Evaluation.PoisonBench.PoisonBenchReportKeys.Of).SelectMany(k => new[] { k.Worst, k.Median, k.Control })];

    public override string Name => "poison-grid";
    public override IReadOnlyList<string> DependsOn => ["data"];
    public override IReadOnlyList<MetricKey> MetricKeys => [Cells, DefaultRuleShare, StripAddWorst, StripAlphaWorst, .. DetectorKeys];

    /// <summary>The grid's cache, beside the assessment's own folder (where <c>poison-bench</c> keeps it by default).</summary>
    public static string CacheDirectory(AssessmentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.OutputDirectory))) ?? ".";
        return Path.Combine(parent, "poison-bench", PoisonGrid.Quick.Name, "cache");
    }

    public override object Inputs(StageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var codeVersion = CellCache.CodeFingerprint;
        // Reading the cache: which of the grid's cells are finished decides what this stage can quote, so it is part of its inputs.
        var finished = context.Profile.RunPoisonGrid ? [] : FinishedCells(context.Options, codeVersion);
        return new { run = context.Profile.RunPoisonGrid, grid = PoisonGrid.Quick, codeVersion, finished };
    }

    private static string[] FinishedCells(AssessmentOptions options, string codeVersion)
    {
        var directory = CacheDirectory(options);
        if (!Directory.Exists(directory)) return [];
        var cache = new CellCache(directory);
        return [.. PoisonGrid.Quick.Cells().Where(c => cache.Finished(c, CellCache.Fingerprint(PoisonGrid.Quick, c, codeVersion)) is not null).Select(c => c.Id)];
    }

    public override StageOutput Run(StageContext context, string directory)
    {
        ArgumentNullException.ThrowIfNull(context);
        var grid = PoisonGrid.Quick;
        var codeVersion = CellCache.CodeFingerprint;
        var cacheDirectory = CacheDirectory(context.Options);
        var cache = new CellCache(cacheDirectory);
        if (context.Profile.RunPoisonGrid)
        {
            var experiment = new CellExperiment(grid, context.Mnist, cache, codeVersion);
            PoisonBenchRunner.Run(experiment, grid.Cells(), new InlineProgress<PoisonBenchRunner.Progress>(p => context.Report($"[{p.Done}/{p.Total}] {p.Cell}: {p.Message}")),
                context.CancellationToken);
        }
        var report = PoisonBenchRunner.Collect(grid, cache, codeVersion) with { CodeVersion = CodeVersion.Current() };
        if (!report.Complete)
        {
            context.Report($"the quick poisoning grid is not in {cacheDirectory} ({report.Cells.Count} of {report.CellsTotal} cells): run ./securemnist poison-bench (about 30 min)");
            return new StageOutput(new Dictionary<string, Metric>(), new Dictionary<string, string>(),
                new JsonObject { ["not_measured"] = $"{report.CellsTotal - report.Cells.Count} of {report.CellsTotal} cells of the quick grid are missing; run ./securemnist poison-bench" });
        }
        IO.JsonFormat.Save(Path.Combine(directory, PoisonBenchReport.FileName), report);
        IO.AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), report.Markdown());
        var pictures = PoisonBenchPlots.Save(report, directory);
        var metrics = new Dictionary<string, Metric>
        {
            [Cells.Name] = Metric.Count(report.Cells.Count, $"cells of the quick poisoning grid ({string.Join(", ", grid.Attacks)} at {string.Join(", ", grid.Rates.Select(r => $"{100 * r:0.#}%"))} of class {string.Join(",", grid.Targets)}, plus a clean control)"),
        };
        if (report.DefaultCriterion is { } rule)
            metrics[DefaultRuleShare.Name] = Metric.Percent(rule.Share, $"cells at rates >= 1% where {rule.Method} finds >= 95% of the poison, flags <= 1% of clean target samples and sanitizing leaves ASR <= 1% ({rule.Met} of {rule.Cells}; the bar is 80%)");
        foreach (var method in CellExperiment.Methods)
        {
            var name = Defenses.PoisonDetector.MethodName(method);
            var keys = PoisonBenchReportKeys.Of(method);
            if (report.Headlines.FirstOrDefault(h => h.Method == name) is { } headline)
            {
                metrics[keys.Worst.Name] = Metric.Percent(headline.Worst.Recall, $"{name}: recall in its worst grid cell ({headline.Worst.Cell})");
                metrics[keys.Median.Name] = Metric.Percent(headline.Median.Recall, $"{name}: recall in its median grid cell ({headline.Median.Cell})");
            }
            var control = report.Controls.Where(c => c.Method == name).ToList();
            if (control.Count > 0)
                metrics[keys.Control.Name] = Metric.Count(control.Sum(c => c.Flagged), $"{name}: samples flagged in an unpoisoned training set of {control[0].TrainImages:N0} (every one a false alarm)");
        }
        foreach (var (blend, key) in new[] { ("add", StripAddWorst), ("alpha", StripAlphaWorst) })
        {
            var worst = report.Strip.Where(s => s.Blend == blend && s.TruePositiveRate is not null).MinBy(s => s.TruePositiveRate!.Mean);
            if (worst is not null)
                metrics[key.Name] = Metric.Percent(worst.TruePositiveRate!.Mean, $"STRIP ({blend}): triggered inputs flagged at 5% FPR in its worst grid cell ({worst.Attack}, {100 * worst.Rate:0.#}% of the target class)");
        }
        var files = new Dictionary<string, string> { ["bench"] = Path.Combine(directory, PoisonBenchReport.FileName), ["report"] = Path.Combine(directory, "report.md") };
        foreach (var picture in pictures) files[Path.GetFileNameWithoutExtension(picture)] = picture;
        return new StageOutput(metrics, files);
    }
}
