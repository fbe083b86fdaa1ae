using ScottPlot;

namespace SecureMnist.Reporting;

/// <summary>One bar: its label under the axis, its height, whether it is drawn in the alarm colour, and a note above it.</summary>
public sealed record Bar(string Label, double Value, bool Highlighted = false, string? Note = null);

/// <summary>
/// Bar charts (ScottPlot): one bar per category, highlighted bars in red, an optional dashed threshold line; the axis ends at
/// <c>yMax</c> when given (100 for a percentage), else just above the tallest bar and its note.
/// </summary>
public static class BarChart
{
    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<Bar> bars,
        (double Value, string Label)? threshold = null, string highlightedLabel = "highlighted", int width = 900, int height = 560, double? yMax = null)
    {
        ArgumentNullException.ThrowIfNull(bars);
        if (bars.Count == 0) throw new ArgumentException("nothing to plot", nameof(bars));
        var plot = Charts.New(title, xLabel, yLabel);
        var drawn = bars.Select((bar, i) => new ScottPlot.Bar
        {
            Position = i, Value = bar.Value, FillColor = bar.Highlighted ? Charts.Alarm : Charts.Palette[0], LineWidth = 0, Size = 0.6,
        }).ToList();
        plot.Add.Bars(drawn);
        var top = bars.Max(b => b.Value);
        foreach (var (bar, i) in bars.Select((b, i) => (b, i)))
            if (bar.Note is { } note)
            {
                var text = plot.Add.Text(note, i, bar.Value);
                text.LabelAlignment = Alignment.LowerCenter;
                text.LabelFontSize = 13;
                text.LabelFontName = Fonts.SansFamily;
                text.OffsetY = -4;
            }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, bars.Count).Select(i => (double)i).ToArray(), bars.Select(b => b.Label).ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 13;
        if (bars.Any(b => b.Highlighted)) plot.Legend.ManualItems.Add(new LegendItem { LabelText = highlightedLabel, FillColor = Charts.Alarm });
        if (threshold is { } line)
        {
            var rule = plot.Add.HorizontalLine(line.Value, 2, Colors.Black, LinePattern.Dashed);
            rule.LegendText = line.Label;
            top = Math.Max(top, line.Value);
        }
        var low = Math.Min(0, bars.Min(b => b.Value));
        plot.Axes.SetLimits(-0.6, bars.Count - 0.4, low, yMax ?? (top <= 0 ? 1 : top * (bars.Any(b => b.Note is not null) ? 1.12 : 1.05)));
        plot.HideGrid();
        plot.Grid.YAxisStyle.IsVisible = true;
        plot.ShowLegend(Edge.Right);
        Charts.Save(plot, path, width, height);
    }
}
