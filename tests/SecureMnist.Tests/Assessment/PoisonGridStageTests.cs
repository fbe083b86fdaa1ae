using SecureMnist.Assessment;
using SecureMnist.Evaluation.PoisonBench;
using SecureMnist.Security;

namespace SecureMnist.Tests.Assessment;

/// <summary>The poison-grid stage quotes the quick grid from its cache: worst and median cells, never the best, and nothing when cells are missing.</summary>
public sealed class PoisonGridStageTests
{
    private static CellResult Fake(GridCell cell, string fingerprint, double recall) => new(
        cell, fingerprint, 20_000, [.. Enumerable.Repeat(2_000, 10)], cell.IsControl ? 0 : 60, 0, 0.98, cell.IsControl ? null : 0.9, 2_700,
        [.. CellExperiment.Methods.Select(m => new DetectorOutcome(SecureMnist.Defenses.PoisonDetector.MethodName(m), cell.IsControl ? 3 : 60, cell.IsControl ? 0 : 60,
            cell.IsControl ? 0 : (int)(60 * recall), cell.IsControl ? null : recall, 1, 2_000, 0, 0, cell.IsControl ? 3 : 0, new int[10]))],
        cell.IsControl ? [] : [new StripOutcome("add", 0.1, 1000, 50, 0.05, 900, (int)(900 * recall), recall), new StripOutcome("alpha", 0.1, 1000, 50, 0.05, 900, 450, 0.5)],
        null, 1, CellCache.Worker);

    private static (StageContext Context, string Directory, AssessmentOptions Options) Context(string root)
    {
        var options = new AssessmentOptions(AssessmentProfile.Quick, Path.Combine(root, "assess-quick"), TestPaths.DataRoot, "unused", Force: false, RepositoryRoot: null);
        Directory.CreateDirectory(options.OutputDirectory);
        var context = new StageContext(options, SigningKey.Generate(), TestPaths.Mnist(100), new StageStore(options.OutputDirectory),
            (_, _, _, _, _) => throw new InvalidOperationException("no service here"), new Dictionary<string, StageResult>(), _ => { }, CancellationToken.None);
        var directory = Path.Combine(options.OutputDirectory, "stages", "poison-grid");
        Directory.CreateDirectory(directory);
        return (context, directory, options);
    }

    [Fact]
    public void The_quick_profile_quotes_the_worst_and_median_cells_from_the_grid_cache()
    {
        var root = TestPaths.NewScratchDirectory();
        var (context, directory, options) = Context(root);
        var cache = new CellCache(PoisonGridStage.CacheDirectory(options));
        Assert.StartsWith(Path.Combine(root, "poison-bench", "quick"), cache.Root, StringComparison.Ordinal);
        var version = CellCache.CodeFingerprint;
        var cells = PoisonGrid.Quick.Cells();
        var stage = new PoisonGridStage();

        // Nothing measured yet: no figures, and no made-up ones.
        Assert.Empty(stage.Run(context, directory).Metrics);

        var recalls = new Dictionary<string, double>();
        for (var i = 0; i < cells.Count; i++)
        {
            var recall = cells[i].IsControl ? 0 : 0.2 + 0.8 * i / cells.Count;
            recalls[cells[i].Id] = recall;
            var fingerprint = CellCache.Fingerprint(PoisonGrid.Quick, cells[i], version);
            cache.GetOrRun(cells[i], fingerprint, () => Fake(cells[i], fingerprint, recall));
        }
        var metrics = stage.Run(context, directory).Metrics;
        var poisoned = cells.Where(c => !c.IsControl).Select(c => recalls[c.Id]).Order().ToList();
        Assert.Equal(poisoned[0], metrics["poison_grid.spectre_worst_recall"].Value, 6);
        Assert.Equal(poisoned[(poisoned.Count - 1) / 2], metrics["poison_grid.spectre_median_recall"].Value, 6);
        Assert.Contains(cells.First(c => !c.IsControl).ToString(), metrics["poison_grid.spectre_worst_recall"].Label, StringComparison.Ordinal);
        Assert.Equal(3, metrics["poison_grid.activation_clustering_control_flagged"].Value);
        Assert.Equal(poisoned[0], metrics["poison_grid.strip_add_worst_tpr"].Value, 6);
        Assert.Equal(cells.Count, metrics["poison_grid.cells"].Value);
        foreach (var key in metrics.Keys) Assert.True(stage.Declares(key), key);
        Assert.True(File.Exists(Path.Combine(directory, "report.md")));
    }
}
