using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Evaluation.PoisonBench;
using SecureMnist.IO;
using SecureMnist.Runtime;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>poison-bench: the poisoning grid (attack x rate x target x seed, plus clean controls), sharded through a shared cache.</summary>
internal static class PoisonBenchCommand
{
    public static Command Create()
    {
        var gridOption = new Option<string>("--grid") { Description = "quick (about 30 min here), full (hours) or a grid JSON file (same fields as bench.json's grid)", DefaultValueFactory = _ => "quick" };
        var output = new Option<string?>("--out") { Description = "Folder for bench.json, report.md and the pictures (default: out/poison-bench/GRID)" };
        var cacheOption = new Option<string?>("--cache") { Description = "Cell cache folder, shareable between machines (default: OUT/cache)" };
        var shardOption = new Option<string?>("--shard") { Description = "Run only shard K of N (K/N): cells at positions K-1, K-1+N, ...; other processes run the other shards on the same --cache" };
        var merge = new Option<bool>("--merge") { Description = "Run nothing: assemble the report from the cells the cache holds" };
        var list = new Option<bool>("--list") { Description = "Print the grid's cells (with --shard: that shard's) and exit" };
        var json = CommonOptions.Json();
        var command = new Command("poison-bench", """
            The poisoning grid: every attack x poison rate (a share of the target class) x target class x seed trains a
            poisoned model and measures the backdoor, every detector (recall, precision, clean target samples
            flagged, ROC), STRIP with both blends, and sanitizing with the default detector; a clean control per seed
            measures the detectors' false alarms. Cells are cached by fingerprint: a rerun skips finished cells and an
            interrupted one resumes. Writes bench.json, report.md, heatmaps and ROC curves.
            Example: ./securemnist poison-bench                                   (quick grid, one process)
            Example: ./securemnist poison-bench --grid full --shard 1/3 --cache /mnt/shared/pb   (and 2/3, 3/3 elsewhere)
            Example: ./securemnist poison-bench --grid full --cache /mnt/shared/pb --merge
            """)
        { gridOption, output, cacheOption, shardOption, merge, list, json };
        command.SetAction(result =>
        {
            var grid = PoisonGrid.Resolve(result.GetValue(gridOption)!);
            var shard = result.GetValue(shardOption) is { } text ? Shard.Parse(text) : Shard.All;
            if (result.GetValue(merge) && result.GetValue(shardOption) is not null) throw new ArgumentException("--merge assembles every shard's cells; it takes no --shard");
            var directory = result.GetValue(output) ?? Path.Combine("out", "poison-bench", grid.Name);
            var cells = shard.Select(grid.Cells());
            if (result.GetValue(list))
            {
                if (result.GetValue(json)) Ui.WriteJson(new { grid = grid.Name, shard = shard.ToString(), cells = cells.Select(c => new { id = c.Id, c.Attack, c.Rate, c.Target, c.Seed }) });
                else foreach (var cell in cells) Ui.Out.WriteLine($"{cell.Id}\t{cell}");
                return 0;
            }
            var cacheRoot = result.GetValue(cacheOption) ?? Path.Combine(directory, "cache");
            var cache = result.GetValue(merge) ? CellCache.Open(cacheRoot) : new CellCache(cacheRoot);
            var codeVersion = CellCache.CodeFingerprint;
            if (!result.GetValue(merge))
            {
                var mnist = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist");
                var experiment = new CellExperiment(grid, mnist, cache, codeVersion);
                var todo = cells.Count(c => cache.Finished(c, experiment.Fingerprint(c)) is null);
                Ui.Info($"grid {grid.Name}{(shard.Count > 1 ? $", shard {shard}" : "")}: {cells.Count} cells, {cells.Count - todo} already in {cache.Root}, {todo} to run " +
                    $"(each trains {grid.Architecture} {grid.Epochs} epoch(s) on {grid.TrainImages:N0} images{(grid.Sanitize ? ", and again after sanitizing" : "")})");
                PoisonBenchRunner.Run(experiment, cells, new SyncProgress<PoisonBenchRunner.Progress>(p =>
                    Ui.Info($"[{p.Done}/{p.Total}] {p.Cell}: {p.Message}{(p.Remaining is { } r ? $" (about {r.TotalMinutes:0} min left)" : "")}")),
                    CommandRunner.Cancellation.Token);
            }
            var report = PoisonBenchRunner.Collect(grid, cache, codeVersion) with { CodeVersion = CodeVersion.Current() };
            if (shard.Count > 1 && !report.Complete)
            {
                Ui.Success($"shard {shard} done; {report.Cells.Count} of {report.CellsTotal} cells are in {cache.Root}. When every shard has finished: ./securemnist poison-bench --grid {result.GetValue(gridOption)} --cache {cache.Root} --merge");
                if (result.GetValue(json)) Ui.WriteJson(new { grid = grid.Name, shard = shard.ToString(), finished = report.Cells.Count, total = report.CellsTotal, missing = report.Missing });
                return 0;
            }
            Directory.CreateDirectory(directory);
            JsonFormat.Save(Path.Combine(directory, PoisonBenchReport.FileName), report);
            AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), report.Markdown());
            var pictures = PoisonBenchPlots.Save(report, directory);
            if (result.GetValue(json))
            {
                Ui.WriteJson(report with { Cells = [] });
                return report.Complete ? 0 : 3;
            }
            Ui.Out.Write(Summary(report));
            if (report.DefaultCriterion is { } rule)
                Ui.Out.MarkupLine($"default detector ({Markup.Escape(rule.Method)}) at rates >= 1%: recall >= 95%, <= 1% clean target flagged and sanitized ASR <= 1% in [bold]{rule.Met} of {rule.Cells}[/] cells: {(rule.Passed ? "[green]passed[/]" : "[red]missed[/]")} (bar: 80%)");
            foreach (var headline in report.Headlines)
                Ui.Out.MarkupLineInterpolated($"{headline.Method}: worst cell {headline.Worst.Cell} (recall {Ui.Percent(headline.Worst.Recall)}), median cell {headline.Median.Cell} (recall {Ui.Percent(headline.Median.Recall)})");
            if (!report.Complete) Ui.Warning($"{report.Missing.Count} of {report.CellsTotal} cells have not run; the report covers the rest");
            Ui.Out.MarkupLineInterpolated($"written: {Path.Combine(directory, PoisonBenchReport.FileName)}, {Path.Combine(directory, "report.md")} and {pictures.Count} pictures in {directory}");
            return report.Complete ? 0 : 3;
        });
        return command;
    }

    /// <summary>Column headers narrow enough for an 80-column terminal.</summary>
    private static string Short(string method) => method switch
    {
        "activation-clustering" => "AC",
        "spectral-signatures" => "SS",
        "knn-consistency" => "kNN",
        "knn-reference" => "kNN-ref",
        "knn-union" => "kNN-U",
        _ => method,
    };

    private static Table Summary(PoisonBenchReport report)
    {
        var methods = report.Detectors.Select(d => d.Method).Distinct().ToList();
        var table = new Table().Title("recall per detector (clean target samples flagged: report.md); ASR before and after sanitizing; STRIP TPR at 5% FPR");
        table.AddColumns(["attack", "rate", .. methods.Select(Short), "ASR", "sanitized", "STRIP add", "STRIP alpha"]);
        foreach (var row in report.Attacks)
        {
            var cells = new List<string> { row.Attack, (100 * row.Rate).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) + "%" };
            foreach (var method in methods)
            {
                var d = report.Detectors.First(x => x.Method == method && x.Attack == row.Attack && x.Rate == row.Rate);
                cells.Add(d.Recall?.Format() ?? "-");
            }
            cells.Add(row.AttackSuccessRate?.Format() ?? "no trigger");
            cells.Add(row.SanitizedAttackSuccessRate?.Format() ?? "-");
            foreach (var blend in new[] { "add", "alpha" })
                cells.Add(report.Strip.FirstOrDefault(s => s.Attack == row.Attack && s.Rate == row.Rate && s.Blend == blend)?.TruePositiveRate?.Format() ?? "-");
            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        return table;
    }
}
