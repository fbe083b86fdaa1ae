using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.Evaluation.PoisonBench;
using SecureMnist.IO;
using SecureMnist.Runtime;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.Evaluation;

/// <summary>The poisoning grid: its definition, its shards, its cache (resume, claims) and its report's headline and acceptance rule.</summary>
public sealed class PoisonBenchTests
{
    private static PoisonGrid Tiny => new("tiny", ["corner-square", "label-flip"], [0.05], [7], [1, 2], TrainImages: 1_000, Epochs: 1, TestImages: 2_000, StripOverlays: 4, StripCalibration: 500, StripImages: 300);

    [Fact]
    public void The_grid_lists_controls_first_then_every_combination_once()
    {
        var cells = PoisonGrid.Quick.Cells();
        Assert.Equal(GridCell.CleanControl, cells[0].Attack);
        Assert.Equal(1 + 7 * 3, cells.Count);
        Assert.Equal(cells.Count, cells.Select(c => c.Id).Distinct().Count());
        var full = PoisonGrid.Full.Cells();
        Assert.Equal(3 + 7 * 5 * 3 * 3, full.Count);
        Assert.Contains(full, c => c.Rate == 0.001 && c.Target == 0);
        Assert.Contains(full, c => c.Rate == 0.1 && c.Target == 7 && c.Seed == 3);
    }

    [Fact]
    public void Shards_split_the_cells_so_each_belongs_to_exactly_one()
    {
        var cells = PoisonGrid.Full.Cells();
        var shards = Enumerable.Range(1, 4).Select(k => new Shard(k, 4).Select(cells)).ToList();
        Assert.Equal(cells.Count, shards.Sum(s => s.Count));
        Assert.Equal(cells.Select(c => c.Id).Order(), shards.SelectMany(s => s).Select(c => c.Id).Order());
        Assert.Equal(new Shard(2, 3), Shard.Parse("2/3"));
    }

    [Theory]
    [InlineData("0/2")]
    [InlineData("3/2")]
    [InlineData("1/0")]
    [InlineData("a/b")]
    [InlineData("1/2/3")]
    [InlineData("-1/2")]
    public void A_bad_shard_is_refused(string text) => Assert.Throws<ArgumentException>(() => Shard.Parse(text));

    [Theory]
    [InlineData("""{"name":"g","attacks":["no-such-attack"],"rates":[0.01],"targets":[7],"seeds":[1]}""", "unknown poisoning attack")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0],"targets":[7],"seeds":[1]}""", "poison rate")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[10],"seeds":[1]}""", "target class")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1,1]}""", "listed twice")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1],"testImages":100}""", "test images")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1],"testImages":2000}""", "STRIP needs")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1],"trainImages":100}""", "training images")]
    [InlineData("""{"name":"g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1],"referenceImages":50}""", "reference images")]
    [InlineData("""{"name":"../g","attacks":["blend"],"rates":[0.01],"targets":[7],"seeds":[1]}""", "name")]
    [InlineData("""{"name":"g","attacks":["blend"],"rate":[0.01],"targets":[7],"seeds":[1]}""", "rate")]
    [InlineData("""{"name":"g","attacks":[],"rates":[0.01],"targets":[7],"seeds":[1]}""", "at least one attack")]
    [InlineData("""not json""", "not a poisoning grid")]
    public void A_bad_grid_file_is_refused_with_what_is_wrong(string text, string expected)
    {
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "grid.json");
        File.WriteAllText(path, text);
        var error = Assert.Throws<InvalidDataException>(() => PoisonGrid.Load(path));
        Assert.Contains(expected, error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void A_grid_whose_measured_and_reference_images_overlap_is_refused_before_any_cell_runs()
    {
        var grid = Tiny with { TestImages = 6_000, ReferenceImages = 5_000 };
        grid.Validate();
        var error = Assert.Throws<ArgumentException>(() => new CellExperiment(grid, TestPaths.Mnist(), new CellCache(TestPaths.NewScratchDirectory()), "test"));
        Assert.Contains("trusted reference", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_grid_file_round_trips()
    {
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "grid.json");
        JsonFormat.Save(path, Tiny);
        var loaded = PoisonGrid.Load(path);
        Assert.Equal(Tiny.Cells(), loaded.Cells());
        Assert.Equal(Tiny.TrainImages, loaded.TrainImages);
    }

    private static CellResult Fake(GridCell cell, string fingerprint, double recall = 1, double cleanFlagged = 0, double? sanitizedAsr = 0) => new(
        cell, fingerprint, 1000, [.. Enumerable.Repeat(100, 10)], 10, 0, 0.98, 0.9, 900,
        [new DetectorOutcome("spectre", 10, 10, (int)Math.Round(10 * recall), recall, 1, 100, (int)Math.Round(100 * cleanFlagged), cleanFlagged, 0, new int[10])],
        [], new SanitizeOutcome("spectre", 10, 10, true, 0.98, sanitizedAsr), 1, CellCache.Worker);

    [Fact]
    public void Every_run_is_recorded_when_many_cells_finish_at_once()
    {
        // Two shard processes once lost a line of a shared run log (5 of 6 recorded): an append through .NET's FileMode.Append writes at
        // the end it saw on opening (2,000 runs from 32 threads lost some on every try). Each run now has a record file of its own.
        var cache = new CellCache(TestPaths.NewScratchDirectory());
        var cells = Enumerable.Range(1, 2000).Select(seed => new GridCell("blend", 0.01, 7, seed)).ToList();
        Parallel.ForEach(cells, new ParallelOptions { MaxDegreeOfParallelism = 32 }, cell => cache.GetOrRun(cell, "f", () => Fake(cell, "f")));
        Assert.Equal(cells.Select(c => c.Id).Order(), cache.Runs().Select(r => r.Cell).Order());
        Assert.All(cache.Runs(), r => Assert.Equal(("f", CellCache.Worker), (r.Fingerprint, r.Worker)));
    }

    [Fact]
    public void A_finished_cell_is_not_run_again()
    {
        var cache = new CellCache(TestPaths.NewScratchDirectory());
        var cell = new GridCell("blend", 0.01, 7, 1);
        var runs = 0;
        CellResult Run() { runs++; return Fake(cell, "f1"); }
        cache.GetOrRun(cell, "f1", Run);
        var again = cache.GetOrRun(cell, "f1", Run);
        Assert.Equal(1, runs);
        Assert.Equal(cell, again.Cell);
        Assert.Single(cache.Runs());
        // Other inputs (a new fingerprint) are another cell.
        cache.GetOrRun(cell, "f2", () => { runs++; return Fake(cell, "f2"); });
        Assert.Equal(2, runs);
    }

    [Fact]
    public void A_claim_left_by_a_dead_process_is_taken_over_and_a_live_claim_is_waited_for()
    {
        var root = TestPaths.NewScratchDirectory();
        var cache = new CellCache(root);
        var cell = new GridCell("blend", 0.01, 7, 1);
        // A process id that is not running on this host.
        var dead = Enumerable.Range(400_000, 1000).First(pid => { try { using var p = System.Diagnostics.Process.GetProcessById(pid); return false; } catch (ArgumentException) { return true; } });
        File.WriteAllText(Path.Combine(root, "claims", $"{cell.Id}-f1.claim"), $"{Environment.MachineName}:{dead}");
        var result = cache.GetOrRun(cell, "f1", () => Fake(cell, "f1"));
        Assert.Equal(cell, result.Cell);

        // A live claim (this test's parent process stands in for another worker): the cell is waited for, not run.
        var other = new GridCell("blend", 0.03, 7, 1);
        var claim = Path.Combine(root, "claims", $"{other.Id}-f1.claim");
        File.WriteAllText(claim, $"{Environment.MachineName}:{Environment.ProcessId}");
        var waited = new List<string>();
        var finisher = new Thread(() =>
        {
            Thread.Sleep(1500);
            JsonFormat.Save(Path.Combine(root, "cells", $"{other.Id}-f1.json"), Fake(other, "f1"));
            File.Delete(claim);
        });
        finisher.Start();
        var ran = false;
        var got = cache.GetOrRun(other, "f1", () => { ran = true; return Fake(other, "f1"); }, waited.Add);
        finisher.Join();
        Assert.False(ran);
        Assert.Equal(other, got.Cell);
        Assert.Single(waited);
    }

    [Fact]
    public void The_headline_quotes_the_worst_and_median_cells_and_the_rule_counts_misses()
    {
        var grid = new PoisonGrid("g", ["blend"], [0.003, 0.01, 0.03, 0.1], [7], [1]);
        var cells = grid.Cells().Where(c => !c.IsControl).ToList();
        var results = new List<CellResult>
        {
            Fake(cells[0], "a", recall: 0.1),                          // below 1%: not judged by the rule
            Fake(cells[1], "b", recall: 0.96, cleanFlagged: 0.02),     // too many clean samples flagged
            Fake(cells[2], "c", recall: 1.0),
            Fake(cells[3], "d", recall: 1.0, sanitizedAsr: 0.05),      // the backdoor survives sanitizing
        };
        var report = PoisonBenchReport.Build(grid, results);
        var headline = Assert.Single(report.Headlines);
        Assert.Equal(cells[0], headline.Worst.Cell);
        Assert.Equal(0.96, headline.Median.Recall, 6);
        var rule = report.DefaultCriterion!;
        Assert.Equal(3, rule.Cells);
        Assert.Equal(1, rule.Met);
        Assert.False(rule.Passed);
        Assert.Contains(rule.Misses, m => m.Cell == cells[1] && m.Reason.Contains("clean", StringComparison.Ordinal));
        Assert.Contains(rule.Misses, m => m.Cell == cells[3] && m.Reason.Contains("sanitized ASR", StringComparison.Ordinal));
        Assert.Equal(["clean-s1"], report.Missing);
        Assert.Contains("Incomplete", report.Markdown(), StringComparison.Ordinal);
    }

    [Fact]
    public void Merging_from_a_mistyped_cache_path_is_refused_and_creates_nothing()
    {
        var missing = Path.Combine(Path.GetTempPath(), "securemnist-no-cache-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<DirectoryNotFoundException>(() => CellCache.Open(missing));
        Assert.Contains("not a poison-bench cache", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(missing));
    }

    /// <summary>
    /// Two shard processes at once on one cache, then --merge; against one process on its own cache. Every cell ran exactly once, the
    /// merged report equals the single run's, and a rerun of the single run runs nothing.
    /// </summary>
    [Fact]
    public void Two_shard_processes_share_one_cache_and_the_merge_equals_a_single_run()
    {
        var scratch = TestPaths.NewScratchDirectory();
        var gridFile = Path.Combine(scratch, "grid.json");
        JsonFormat.Save(gridFile, Tiny);
        var shared = Path.Combine(scratch, "shared");
        using (var first = new CliProcess(TestPaths.RepositoryRoot, "poison-bench", "--grid", gridFile, "--cache", shared, "--shard", "1/2", "--out", Path.Combine(scratch, "s1")))
        using (var second = new CliProcess(TestPaths.RepositoryRoot, "poison-bench", "--grid", gridFile, "--cache", shared, "--shard", "2/2", "--out", Path.Combine(scratch, "s2")))
        {
            Assert.True(first.WaitForExit(TimeSpan.FromMinutes(5)) == 0, first.Error);
            Assert.True(second.WaitForExit(TimeSpan.FromMinutes(5)) == 0, second.Error);
        }
        var merged = Path.Combine(scratch, "merged");
        var merge = CliProcess.Run(TestPaths.RepositoryRoot, "poison-bench", "--grid", gridFile, "--cache", shared, "--merge", "--out", merged);
        Assert.True(merge.ExitCode == 0, merge.Error);

        var runs = new CellCache(shared).Runs();
        Assert.Equal(Tiny.Cells().Count, runs.Count);
        Assert.Equal(Tiny.Cells().Select(c => c.Id).Order(), runs.Select(r => r.Cell).Order());
        Assert.Equal(2, runs.Select(r => r.Worker).Distinct().Count());

        var single = Path.Combine(scratch, "single");
        var alone = CliProcess.Run(TestPaths.RepositoryRoot, "poison-bench", "--grid", gridFile, "--out", single);
        Assert.True(alone.ExitCode == 0, alone.Error);
        Assert.Equal(Measured(Path.Combine(merged, PoisonBenchReport.FileName)), Measured(Path.Combine(single, PoisonBenchReport.FileName)));
        foreach (var picture in new[] { "recall-spectre.png", "asr.png", "strip-add.png", "roc-spectral-signatures.png" })
            Assert.True(File.Exists(Path.Combine(merged, picture)), picture);

        var rerun = CliProcess.Run(TestPaths.RepositoryRoot, "poison-bench", "--grid", gridFile, "--out", single);
        Assert.True(rerun.ExitCode == 0, rerun.Error);
        Assert.Contains($"{Tiny.Cells().Count} already in", rerun.Error, StringComparison.Ordinal);
        Assert.Equal(Tiny.Cells().Count, new CellCache(Path.Combine(single, "cache")).Runs().Count);
    }

    /// <summary>The report without what differs between runs of the same measurements: who ran a cell and how long it took.</summary>
    private static string Measured(string path)
    {
        var document = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        document.Remove("cellSeconds");
        foreach (var cell in document["cells"]!.AsArray())
        {
            cell!.AsObject().Remove("seconds");
            cell.AsObject().Remove("runBy");
        }
        return document.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
