using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>One bar: its label under the axis, its height, whether it is drawn in the alarm colour, and a note above it.</summary>
public sealed record Bar(string Label, double Value, bool Highlighted = false, string? Note = null);

/// <summary>
/// Draws bar charts as PNG: one bar per category, highlighted bars in red, an optional dashed threshold line; the axis ends at
/// <c>yMax</c> when given (100 for a percentage), else just above the tallest bar.
/// </summary>
public static class BarChart
{
    private static readonly SKColor Normal = new(31, 119, 180);
    private static readonly SKColor Alarm = new(214, 39, 40);

    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<Bar> bars,
        (double Value, string Label)? threshold = null, string highlightedLabel = "highlighted", int width = 900, int height = 560, double? yMax = null)
    {
        ArgumentNullException.ThrowIfNull(bars);
        if (bars.Count == 0) throw new ArgumentException("nothing to plot", nameof(bars));
        var values = bars.Select(b => b.Value).Append(0).Concat(threshold is { } t ? [t.Value] : []).ToList();
        // Room above the tallest bar for its note.
        var ticks = LineChart.Ticks(values.Min(), yMax ?? values.Max() * (bars.Any(b => b.Note is not null) ? 1.08 : 1));
        using var frame = new ChartFrame(width, height, title, xLabel, yLabel, ticks);
        var slot = (float)frame.PlotWidth / bars.Count;
        var normal = frame.Picture.Own(new SKPaint { Color = Normal, IsAntialias = true });
        var alarm = frame.Picture.Own(new SKPaint { Color = Alarm, IsAntialias = true });
        var floor = frame.Y(ticks[0]);
        for (var i = 0; i < bars.Count; i++)
        {
            var bar = bars[i];
            var x = ChartFrame.Left + i * slot;
            var top = frame.Y(bar.Value);
            frame.Canvas.DrawRect(SKRect.Create(x + slot * 0.2f, top, slot * 0.6f, floor - top), bar.Highlighted ? alarm : normal);
            frame.XTick(x + slot / 2, bar.Label, gridLine: false);
            if (bar.Note is { } note) frame.Canvas.DrawText(note, x + slot / 2, top - 6, SKTextAlign.Center, frame.Picture.Text, frame.Picture.Ink);
        }
        frame.Legend(0, highlightedLabel, (canvas, box) => canvas.DrawRect(box, alarm));
        if (threshold is { } line)
        {
            using var dashed = new SKPaint { Color = SKColors.Black, StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke, PathEffect = SKPathEffect.CreateDash([8, 6], 0) };
            frame.Canvas.DrawLine(ChartFrame.Left, frame.Y(line.Value), ChartFrame.Left + frame.PlotWidth, frame.Y(line.Value), dashed);
            frame.Legend(1, line.Label, (canvas, box) => canvas.DrawLine(box.Left, box.MidY, box.Right, box.MidY, dashed));
        }
        frame.Save(path);
    }
}
