using System.Globalization;
using System.Text;

namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>
/// A figure over a group of cells: its mean, and with two or more seeds the 95% Student-t interval over the seeds (each seed's value is
/// the mean over the group's targets), which is the spread that comes from the poison draw and training.
/// </summary>
public sealed record Spread(int Cells, int Seeds, double Mean, Interval? Interval95)
{
    public static Spread? Of(IEnumerable<(int Seed, double? Value)> values)
    {
        var known = values.Where(v => v.Value is not null).Select(v => (v.Seed, Value: v.Value!.Value)).ToList();
        if (known.Count == 0) return null;
        var perSeed = known.GroupBy(v => v.Seed).Select(g => g.Average(v => v.Value)).ToList();
        return new Spread(known.Count, perSeed.Count, known.Average(v => v.Value), perSeed.Count >= 2 ? SeedInterval.Of(perSeed).Interval95 : null);
    }

    public string Format() => Interval95 is { } ci
        ? $"{Pct(Mean)} ({Pct(ci.Low)}–{Pct(ci.High)})"
        : Pct(Mean);

    internal static string Pct(double fraction) => (100 * fraction).ToString("0.0", CultureInfo.InvariantCulture) + "%";
}

/// <summary>One detector on one attack at one rate, over the grid's targets and seeds.</summary>
public sealed record DetectorRow(string Method, string Attack, double Rate, int Cells, Spread? Recall, Spread? Precision, Spread? CleanTargetFlagged, Spread? Auroc);

/// <summary>The backdoor at one attack and rate: clean accuracy, ASR, and ASR after sanitizing with the default detector.</summary>
public sealed record AttackRow(string Attack, double Rate, int Cells, double MeanPoisonCount, Spread? CleanAccuracy, Spread? AttackSuccessRate,
    Spread? SanitizedAttackSuccessRate, Spread? SanitizedCleanAccuracy, double MeanRemoved);

/// <summary>STRIP with one blend at one attack and rate.</summary>
public sealed record StripRow(string Attack, double Rate, string Blend, int Cells, Spread? TruePositiveRate, Spread? FalsePositiveRate);

/// <summary>A detector on an unpoisoned training set (one seed): every flag is a false alarm.</summary>
public sealed record ControlRow(string Method, int Seed, int TrainImages, int Flagged, double FlaggedShare, IReadOnlyList<int> FlaggedPerClass);

/// <summary>One cell picked for a headline, with the figures that picked it.</summary>
public sealed record CellPick(GridCell Cell, double Recall, double CleanTargetFlagged);

/// <summary>A detector's headline: its worst and its median cell by recall over the poisoned cells (never the best).</summary>
public sealed record Headline(string Method, int Cells, CellPick Worst, CellPick Median);

/// <summary>Why a cell misses the acceptance rule.</summary>
public sealed record CriterionMiss(GridCell Cell, string Reason);

/// <summary>
/// The acceptance rule for the default detector: at poison rates of at least <see cref="MinimumRate"/>, recall at least 95% with at most
/// 1% of the target class's clean samples flagged and a sanitized ASR of at most 1%, in at least 80% of cells.
/// </summary>
public sealed record Criterion(string Method, double MinimumRate, int Cells, int Met, double Share, bool Passed, IReadOnlyList<CriterionMiss> Misses);

/// <summary>The grid's report, from the cells finished so far (by any process sharing the cache).</summary>
public sealed record PoisonBenchReport(
    PoisonGrid Grid,
    int CellsTotal,
    IReadOnlyList<string> Missing,
    IReadOnlyList<DetectorRow> Detectors,
    IReadOnlyList<AttackRow> Attacks,
    IReadOnlyList<StripRow> Strip,
    IReadOnlyList<ControlRow> Controls,
    IReadOnlyList<Headline> Headlines,
    Criterion? DefaultCriterion,
    double CellSeconds,
    IReadOnlyList<CellResult> Cells)
{
    public const string FileName = "bench.json";

    /// <summary>The git commit of the code that assembled the report (cells are matched by <see cref="CellCache.CodeFingerprint"/>).</summary>
    public string? CodeVersion { get; init; }

    public bool Complete => Missing.Count == 0;

    public static PoisonBenchReport Build(PoisonGrid grid, IReadOnlyList<CellResult> results)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(results);
        var byId = results.ToDictionary(r => r.Cell.Id);
        var order = grid.Cells().Select((c, k) => (c.Id, k)).ToDictionary(p => p.Id, p => p.k);
        var attackOrder = grid.Attacks.ToList();
        var missing = grid.Cells().Where(c => !byId.ContainsKey(c.Id)).Select(c => c.Id).ToList();
        var poisoned = results.Where(r => !r.Cell.IsControl).ToList();
        var methods = results.SelectMany(r => r.Detectors.Select(d => d.Method)).Distinct().ToList();
        var groups = poisoned.GroupBy(r => (r.Cell.Attack, r.Cell.Rate))
            .OrderBy(g => attackOrder.IndexOf(g.Key.Attack)).ThenBy(g => g.Key.Rate).ToList();

        var detectors = new List<DetectorRow>();
        foreach (var method in methods)
            foreach (var group in groups)
            {
                var outcomes = group.Select(r => (r.Cell.Seed, Outcome: r.Detectors.First(d => d.Method == method))).ToList();
                detectors.Add(new DetectorRow(method, group.Key.Attack, group.Key.Rate, outcomes.Count,
                    Spread.Of(outcomes.Select(o => (o.Seed, o.Outcome.Recall))),
                    Spread.Of(outcomes.Select(o => (o.Seed, o.Outcome.Precision))),
                    Spread.Of(outcomes.Select(o => (o.Seed, (double?)o.Outcome.CleanFlaggedTargetRate))),
                    Spread.Of(outcomes.Select(o => (o.Seed, o.Outcome.Auroc)))));
            }

        var attacks = groups.Select(group => new AttackRow(group.Key.Attack, group.Key.Rate, group.Count(), group.Average(r => r.PoisonCount),
            Spread.Of(group.Select(r => (r.Cell.Seed, (double?)r.CleanAccuracy))),
            Spread.Of(group.Select(r => (r.Cell.Seed, r.AttackSuccessRate))),
            Spread.Of(group.Select(r => (r.Cell.Seed, r.Sanitized?.AttackSuccessRate))),
            Spread.Of(group.Select(r => (r.Cell.Seed, r.Sanitized?.CleanAccuracy))),
            group.Average(r => r.Sanitized?.Removed ?? 0))).ToList();

        var strip = new List<StripRow>();
        foreach (var group in groups.Where(g => g.Any(r => r.Strip.Count > 0)))
            foreach (var blend in group.SelectMany(r => r.Strip.Select(s => s.Blend)).Distinct())
            {
                var outcomes = group.SelectMany(r => r.Strip.Where(s => s.Blend == blend).Select(s => (r.Cell.Seed, Strip: s))).ToList();
                strip.Add(new StripRow(group.Key.Attack, group.Key.Rate, blend, outcomes.Count,
                    Spread.Of(outcomes.Select(o => (o.Seed, (double?)o.Strip.TruePositiveRate))),
                    Spread.Of(outcomes.Select(o => (o.Seed, (double?)o.Strip.FalsePositiveRate)))));
            }

        var controls = results.Where(r => r.Cell.IsControl).OrderBy(r => r.Cell.Seed)
            .SelectMany(r => r.Detectors.Select(d => new ControlRow(d.Method, r.Cell.Seed, r.TrainImages, d.Flagged, (double)d.Flagged / r.TrainImages, d.FlaggedPerClass)))
            .ToList();

        var headlines = new List<Headline>();
        foreach (var method in methods)
        {
            var picks = poisoned.Select(r => (r.Cell, Outcome: r.Detectors.First(d => d.Method == method)))
                .Where(p => p.Outcome.Recall is not null)
                .Select(p => new CellPick(p.Cell, p.Outcome.Recall!.Value, p.Outcome.CleanFlaggedTargetRate))
                // Ties in recall: the cell that flags more clean samples is the worse one.
                .OrderBy(p => p.Recall).ThenByDescending(p => p.CleanTargetFlagged).ToList();
            if (picks.Count > 0) headlines.Add(new Headline(method, picks.Count, picks[0], picks[(picks.Count - 1) / 2]));
        }

        return new PoisonBenchReport(grid, grid.Cells().Count, missing, detectors, attacks, strip, controls, headlines,
            methods.Count == 0 ? null : DefaultRule(methods[0], poisoned), results.Sum(r => r.Seconds),
            [.. results.OrderBy(r => order.GetValueOrDefault(r.Cell.Id, int.MaxValue))]);
    }

    private static Criterion DefaultRule(string method, IReadOnlyList<CellResult> poisoned, double minimumRate = 0.01)
    {
        var cells = poisoned.Where(r => r.Cell.Rate >= minimumRate - 1e-12).ToList();
        var misses = new List<CriterionMiss>();
        foreach (var cell in cells)
        {
            var outcome = cell.Detectors.First(d => d.Method == method);
            var reasons = new List<string>();
            if (!(outcome.Recall >= 0.95)) reasons.Add($"recall {Spread.Pct(outcome.Recall ?? 0)}");
            if (outcome.CleanFlaggedTargetRate > 0.01) reasons.Add($"{Spread.Pct(outcome.CleanFlaggedTargetRate)} of clean class-{cell.Cell.Target} samples flagged");
            var asr = cell.Sanitized?.AttackSuccessRate;
            if (asr is > 0.01) reasons.Add($"sanitized ASR {Spread.Pct(asr.Value)}");
            if (reasons.Count > 0) misses.Add(new CriterionMiss(cell.Cell, string.Join("; ", reasons)));
        }
        var met = cells.Count - misses.Count;
        var share = cells.Count == 0 ? 0 : (double)met / cells.Count;
        return new Criterion(method, minimumRate, cells.Count, met, share, cells.Count > 0 && share >= 0.8, misses);
    }

    private static string Rate(double rate) => (100 * rate).ToString("0.##", CultureInfo.InvariantCulture) + "%";

    /// <summary>The report as Markdown: what ran, the tables, the clean control, the headlines and the acceptance rule.</summary>
    public string Markdown()
    {
        var md = new StringBuilder();
        var g = Grid;
        md.AppendLine(CultureInfo.InvariantCulture, $"# Poisoning grid `{g.Name}`");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"{Cells.Count} of {CellsTotal} cells finished ({CellSeconds / 60:0.#} min of cell time). Each cell trains `{g.Architecture}` for {g.Epochs} epoch(s) on a seeded draw of {g.TrainImages:N0} training images and measures on the first {g.TestImages:N0} test images. Rates are shares of the target class's training images. Attacks: {string.Join("; ", g.AttackDefinitions.Select(a => $"`{a.Name}`: {a.Description}"))}. Targets {string.Join(", ", g.Targets)}; seeds {string.Join(", ", g.Seeds)}.");
        md.AppendLine();
        md.AppendLine(g.Seeds.Count >= 2
            ? "Figures are means over the cells; the bracket is the 95% Student-t interval over the seeds."
            : "Figures are means over the cells; one seed gives no interval over seeds.");
        if (!Complete)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"**Incomplete:** {Missing.Count} cells have not run: {string.Join(", ", Missing.Take(12))}{(Missing.Count > 12 ? ", ..." : "")}.");
        }
        foreach (var headline in Headlines)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"- **{headline.Method}** over {headline.Cells} poisoned cells: worst cell {headline.Worst.Cell} (recall {Spread.Pct(headline.Worst.Recall)}, {Spread.Pct(headline.Worst.CleanTargetFlagged)} of clean target samples flagged); median cell {headline.Median.Cell} (recall {Spread.Pct(headline.Median.Recall)}, {Spread.Pct(headline.Median.CleanTargetFlagged)}).");
        }
        if (DefaultCriterion is { } rule)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"## The default detector's rule ({rule.Method}, rates >= {Rate(rule.MinimumRate)})");
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"Recall >= 95%, <= 1% of clean target samples flagged and sanitized ASR <= 1%: met in **{rule.Met} of {rule.Cells}** cells ({Spread.Pct(rule.Share)}); the bar is 80%: **{(rule.Passed ? "passed" : "missed")}**.");
            if (rule.Misses.Count > 0)
            {
                md.AppendLine();
                md.AppendLine("| cell | why it misses |");
                md.AppendLine("|---|---|");
                foreach (var miss in rule.Misses) md.AppendLine(CultureInfo.InvariantCulture, $"| {miss.Cell} | {miss.Reason} |");
            }
        }
        foreach (var method in Detectors.Select(d => d.Method).Distinct())
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"## {method}");
            md.AppendLine();
            md.AppendLine("| attack | rate | cells | recall | precision | clean target flagged | AUROC (target class) |");
            md.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var row in Detectors.Where(d => d.Method == method))
                md.AppendLine(CultureInfo.InvariantCulture, $"| {row.Attack} | {Rate(row.Rate)} | {row.Cells} | {row.Recall?.Format() ?? "-"} | {row.Precision?.Format() ?? "nothing flagged"} | {row.CleanTargetFlagged?.Format() ?? "-"} | {(row.Auroc is { } a ? a.Mean.ToString("0.000", CultureInfo.InvariantCulture) : "no score")} |");
        }
        md.AppendLine();
        md.AppendLine("## Clean control (no poison: every flag is a false alarm)");
        md.AppendLine();
        md.AppendLine("| detector | seed | flagged | share of the training set | flagged per class 0-9 |");
        md.AppendLine("|---|---|---|---|---|");
        foreach (var row in Controls)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {row.Method} | {row.Seed} | {row.Flagged} of {row.TrainImages:N0} | {(100 * row.FlaggedShare).ToString("0.00", CultureInfo.InvariantCulture)}% | {string.Join(" ", row.FlaggedPerClass)} |");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"## The backdoor, and after sanitizing with {DefaultCriterion?.Method ?? "the default detector"}");
        md.AppendLine();
        md.AppendLine("| attack | rate | cells | poisoned samples | clean accuracy | ASR | removed | ASR after | clean accuracy after |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var row in Attacks)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {row.Attack} | {Rate(row.Rate)} | {row.Cells} | {row.MeanPoisonCount:0.#} | {row.CleanAccuracy?.Format() ?? "-"} | {row.AttackSuccessRate?.Format() ?? "no trigger"} | {row.MeanRemoved:0.#} | {row.SanitizedAttackSuccessRate?.Format() ?? "-"} | {row.SanitizedCleanAccuracy?.Format() ?? "-"} |");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"## STRIP ({g.StripOverlays} overlays from {PoisonGrid.StripPool:N0} test images, calibrated to 5% FPR on {g.StripCalibration:N0} clean ones, scored on up to {g.StripImages:N0} held-out clean images and their triggered copies)");
        md.AppendLine();
        md.AppendLine("| attack | rate | blend | cells | TPR | FPR |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var row in Strip)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {row.Attack} | {Rate(row.Rate)} | {row.Blend} | {row.Cells} | {row.TruePositiveRate?.Format() ?? "-"} | {row.FalsePositiveRate?.Format() ?? "-"} |");
        return md.ToString();
    }
}

/// <summary>The assessment's metric keys for one detector's grid headline.</summary>
public sealed record PoisonBenchReportKeys(Assessment.MetricKey Worst, Assessment.MetricKey Median, Assessment.MetricKey Control)
{
    public static PoisonBenchReportKeys Of(Defenses.PoisonDetectionMethod method)
    {
        var name = Defenses.PoisonDetector.MethodName(method).Replace('-', '_');
        return new(new($"poison_grid.{name}_worst_recall"), new($"poison_grid.{name}_median_recall"), new($"poison_grid.{name}_control_flagged"));
    }
}
