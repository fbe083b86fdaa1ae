namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>Runs a grid's cells (or one shard's) through the cache, and assembles the report from whatever the cache holds.</summary>
public static class PoisonBenchRunner
{
    /// <summary>Progress of a run: cells done of this process's share, the cell at hand, and what it is doing.</summary>
    public sealed record Progress(int Done, int Total, GridCell Cell, string Message, TimeSpan? Remaining);

    public static IReadOnlyList<CellResult> Run(CellExperiment experiment, IReadOnlyList<GridCell> cells, IProgress<Progress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(cells);
        var results = new List<CellResult>();
        var measuredSeconds = new List<double>();
        for (var i = 0; i < cells.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var cell = cells[i];
            TimeSpan? remaining = measuredSeconds.Count == 0 ? null : TimeSpan.FromSeconds(measuredSeconds.Average() * (cells.Count - i));
            var done = i;
            var stepProgress = progress is null ? null : new Relay(message => progress.Report(new Progress(done, cells.Count, cell, message, remaining)));
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            var result = experiment.Run(cell, stepProgress, cancellationToken);
            // Cells answered from the cache take no time and would spoil the estimate.
            if (result.RunBy == CellCache.Worker && stopwatch.Elapsed.TotalSeconds > 1) measuredSeconds.Add(stopwatch.Elapsed.TotalSeconds);
            results.Add(result);
            progress?.Report(new Progress(i + 1, cells.Count, cell, result.RunBy == CellCache.Worker ? $"done in {result.Seconds:0} s" : "from the cache", remaining));
        }
        return results;
    }

    /// <summary>The report of every cell of the grid the cache holds (finished by any process); missing cells are listed as such.</summary>
    public static PoisonBenchReport Collect(PoisonGrid grid, CellCache cache, string codeVersion)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(cache);
        var results = grid.Cells().Select(cell => cache.Finished(cell, CellCache.Fingerprint(grid, cell, codeVersion))).OfType<CellResult>().ToList();
        return PoisonBenchReport.Build(grid, results);
    }

    private sealed class Relay(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
