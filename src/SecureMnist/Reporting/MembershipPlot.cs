using SecureMnist.Privacy;

namespace SecureMnist.Reporting;

/// <summary>ROC curves of membership attacks on log-log axes (where the low false-positive regime that matters is visible), with chance and, for a DP model, the bound.</summary>
public static class MembershipPlot
{
    private const double Floor = 1e-4;

    public static void Save(string path, MembershipReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        static (double X, double Y) Point(double fpr, double tpr) => (Math.Log10(Math.Max(fpr, Floor)), Math.Log10(Math.Max(tpr, Floor)));
        var grid = Enumerable.Range(0, 41).Select(i => Math.Pow(10, -4 + i / 10.0)).ToArray();
        var series = report.Attacks.Select(a => new Series($"{a.Attack.Split(" (")[0]}, AUC {a.Auc:F3}", a.Curve.Select(p => Point(p.FalsePositiveRate, p.TruePositiveRate)).ToList())).ToList();
        series.Add(new Series("chance", grid.Select(f => Point(f, f)).ToList()));
        if (report.Bound is { } bound)
            series.Add(new Series($"DP bound, eps {bound.Epsilon:F2}", grid.Select(f => Point(f, bound.MaxTruePositiveRate(f))).ToList()));
        LineChart.Save(path, $"membership inference on {report.Model}: {report.Members} members vs {report.NonMembers} non-members{(report.Shadows is { } s ? $", {s.Count} shadows" : "")}",
            "false-positive rate (log10)", "true-positive rate (log10)", series, yMin: -4, yMax: 0);
    }
}
