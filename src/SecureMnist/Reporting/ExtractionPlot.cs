using SecureMnist.Attacks.Extraction;

namespace SecureMnist.Reporting;

/// <summary>What a stolen copy is worth against the queries it cost: fidelity and transfer rate per budget, on a log axis of queries.</summary>
public static class ExtractionPlot
{
    public static void Save(string path, string title, IReadOnlyList<ExtractionReport> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        var strategies = reports.Select(r => r.Strategy).Distinct().Count();
        string Name(ExtractionReport r) => (strategies > 1 ? r.Strategy.ToString().ToLowerInvariant() + ", " : "") + (r.Scores ? "scores" : "labels");
        var series = reports.SelectMany(r => new[]
        {
            new Series($"fidelity, {Name(r)}", r.Points.Select(p => (Math.Log10(p.Budget), 100 * p.Fidelity)).ToList()),
            new Series($"transfer, {Name(r)}", r.Points.Select(p => (Math.Log10(p.Budget), 100 * p.TransferRate)).ToList()),
        }).ToList();
        LineChart.Save(path, title, "queries (log10)", "% of test images", series, yMin: 0, yMax: 100);
    }
}
