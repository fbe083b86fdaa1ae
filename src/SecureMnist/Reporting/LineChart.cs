using ScottPlot;

namespace SecureMnist.Reporting;

/// <summary>A named series of (x, y) points.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>
/// Line charts (ScottPlot): per series a line and hollow markers in its own colour, dash pattern and marker shape, so series that
/// coincide (PGD and the worst case of a model PGD breaks, two models at one point) stay visible under each other; the legend on the
/// right. PNG, or SVG when the path ends in .svg.
/// </summary>
public static class LineChart
{
    private static readonly LinePattern[] Dashes = [LinePattern.Solid, LinePattern.Dashed, LinePattern.Dotted, LinePattern.DenselyDashed];

    // The circle is drawn wider than the square, so a square on the same point leaves it showing.
    private static readonly (MarkerShape Shape, float Size)[] Markers =
        [(MarkerShape.OpenCircle, 13), (MarkerShape.OpenSquare, 9), (MarkerShape.OpenTriangleUp, 11), (MarkerShape.OpenDiamond, 12)];

    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<Series> series,
        double? yMin = null, double? yMax = null, int width = 900, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(series);
        var points = series.SelectMany(s => s.Points).ToList();
        if (points.Count == 0) throw new ArgumentException("nothing to plot");
        if (points.Any(p => !double.IsFinite(p.X) || !double.IsFinite(p.Y))) throw new ArgumentException("a point is not a finite number");
        var plot = Charts.New(title, xLabel, yLabel);
        for (var s = 0; s < series.Count; s++)
        {
            var ordered = series[s].Points.OrderBy(p => p.X).ToList();
            var scatter = plot.Add.Scatter(ordered.Select(p => p.X).ToArray(), ordered.Select(p => p.Y).ToArray());
            scatter.LegendText = series[s].Name;
            scatter.Color = Charts.Palette[s % Charts.Palette.Length];
            scatter.LineWidth = 2.5f;
            scatter.LinePattern = Dashes[s % Dashes.Length];
            (scatter.MarkerShape, scatter.MarkerSize) = Markers[s % Markers.Length];
            scatter.MarkerLineWidth = 2;
        }
        if (yMin is not null || yMax is not null)
            plot.Axes.SetLimitsY(yMin ?? points.Min(p => p.Y), yMax ?? points.Max(p => p.Y));
        plot.ShowLegend(Edge.Right);
        Charts.Save(plot, path, width, height);
    }
}
