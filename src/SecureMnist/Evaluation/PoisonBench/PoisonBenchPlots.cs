using System.Globalization;
using SecureMnist.Reporting;

namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>The grid's pictures: heatmaps (rate x attack) of each detector's recall, STRIP's TPR per blend and the ASR before and after sanitizing, and ROC curves of the detectors that score.</summary>
public static class PoisonBenchPlots
{
    /// <summary>Writes the pictures into <paramref name="directory"/> and returns their paths.</summary>
    public static IReadOnlyList<string> Save(PoisonBenchReport report, string directory)
    {
        ArgumentNullException.ThrowIfNull(report);
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        var attacks = report.Grid.Attacks.Where(a => report.Attacks.Any(r => r.Attack == a)).ToList();
        var rates = report.Attacks.Select(r => r.Rate).Distinct().Order().ToList();
        if (attacks.Count == 0) return files;
        var columns = rates.Select(r => (100 * r).ToString("0.##", CultureInfo.InvariantCulture) + "%").ToList();

        void Map(string file, string title, Func<string, double, double?> value, bool higherIsBetter = true)
        {
            var values = new double?[attacks.Count, rates.Count];
            for (var a = 0; a < attacks.Count; a++)
                for (var r = 0; r < rates.Count; r++)
                    values[a, r] = value(attacks[a], rates[r]);
            var path = Path.Combine(directory, file);
            Heatmap.Save(path, title, "attack", "poison rate (share of the target class)", attacks, columns, values, higherIsBetter);
            files.Add(path);
        }

        foreach (var method in report.Detectors.Select(d => d.Method).Distinct())
        {
            Map($"recall-{method}.png", $"{method}: recall (mean over cells)", (a, r) => report.Detectors.FirstOrDefault(d => d.Method == method && d.Attack == a && d.Rate == r)?.Recall?.Mean);
            Map($"clean-flagged-{method}.png", $"{method}: clean target-class samples flagged", (a, r) =>
                report.Detectors.FirstOrDefault(d => d.Method == method && d.Attack == a && d.Rate == r)?.CleanTargetFlagged?.Mean, higherIsBetter: false);
        }
        foreach (var blend in report.Strip.Select(s => s.Blend).Distinct())
            Map($"strip-{blend}.png", $"STRIP ({(blend == "add" ? "add and clip" : "alpha blend")}): triggered inputs flagged at 5% FPR",
                (a, r) => report.Strip.FirstOrDefault(s => s.Blend == blend && s.Attack == a && s.Rate == r)?.TruePositiveRate?.Mean);
        Map("asr.png", "backdoor attack success rate", (a, r) => report.Attacks.FirstOrDefault(x => x.Attack == a && x.Rate == r)?.AttackSuccessRate?.Mean, higherIsBetter: false);
        if (report.Attacks.Any(x => x.SanitizedAttackSuccessRate is not null))
            Map("asr-sanitized.png", $"attack success rate after sanitizing ({report.DefaultCriterion?.Method})",
                (a, r) => report.Attacks.FirstOrDefault(x => x.Attack == a && x.Rate == r)?.SanitizedAttackSuccessRate?.Mean, higherIsBetter: false);

        // ROC: per detector that scores, one curve per attack, the TPR averaged over its cells at each fixed FPR (vertical averaging).
        var fprs = CellResult.RocFalsePositiveRates;
        foreach (var method in report.Detectors.Where(d => d.Auroc is not null).Select(d => d.Method).Distinct())
        {
            var series = new List<Series>();
            foreach (var attack in attacks)
            {
                var curves = report.Cells.Where(c => c.Cell.Attack == attack)
                    .Select(c => c.Detectors.First(d => d.Method == method).RocTruePositiveRates).OfType<IReadOnlyList<double>>().ToList();
                if (curves.Count == 0) continue;
                var points = Enumerable.Range(0, fprs.Count).Where(i => fprs[i] > 0).Select(i => (Math.Log10(fprs[i]), curves.Average(c => c[i]))).ToList();
                series.Add(new Series($"{attack} ({curves.Count} cells)", points));
            }
            if (series.Count == 0) continue;
            var path = Path.Combine(directory, $"roc-{method}.png");
            LineChart.Save(path, $"{method}: poison against the target class's clean samples", "false-positive rate (log10: -3 is 0.1%)", "true-positive rate", series, 0, 1);
            files.Add(path);
        }
        return files;
    }
}
