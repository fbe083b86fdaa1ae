using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>A named series of (x, y) points.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>Draws line charts as PNG: axes with ticks, one coloured line with markers per series, a legend.</summary>
public static class LineChart
{
    private static readonly SKColor[] Palette =
    [
        new(31, 119, 180), new(214, 39, 40), new(44, 160, 44), new(255, 127, 14), new(148, 103, 189), new(140, 86, 75), new(0, 0, 0),
    ];

    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<Series> series,
        double? yMin = null, double? yMax = null, int width = 900, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(series);
        var points = series.SelectMany(s => s.Points).ToList();
        if (points.Count == 0) throw new ArgumentException("nothing to plot");
        var xTicks = Ticks(points.Min(p => p.X), points.Max(p => p.X));
        var yTicks = Ticks(yMin ?? points.Min(p => p.Y), yMax ?? points.Max(p => p.Y));
        var (x0, x1) = (xTicks[0], xTicks[^1]);
        using var frame = new ChartFrame(width, height, title, xLabel, yLabel, yTicks);
        float X(double x) => ChartFrame.Left + (float)((x - x0) / (x1 - x0) * frame.PlotWidth);
        foreach (var xValue in xTicks) frame.XTick(X(xValue), ChartFrame.Format(xValue), gridLine: true);
        for (var s = 0; s < series.Count; s++)
        {
            using var line = new SKPaint { Color = Palette[s % Palette.Length], StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var marker = new SKPaint { Color = Palette[s % Palette.Length], IsAntialias = true, Style = SKPaintStyle.Fill };
            var ordered = series[s].Points.OrderBy(p => p.X).ToList();
            for (var i = 1; i < ordered.Count; i++)
                frame.Canvas.DrawLine(X(ordered[i - 1].X), frame.Y(ordered[i - 1].Y), X(ordered[i].X), frame.Y(ordered[i].Y), line);
            foreach (var point in ordered) frame.Canvas.DrawCircle(X(point.X), frame.Y(point.Y), 4, marker);
            frame.Legend(s, series[s].Name, (canvas, box) => canvas.DrawLine(box.Left, box.MidY, box.Right, box.MidY, line));
        }
        frame.Save(path);
    }

    /// <summary>
    /// Axis ticks at round numbers (1, 2 or 5 times a power of ten apart, about five intervals) from a multiple of the
    /// step at or below <paramref name="min"/> to one at or above <paramref name="max"/>; the first and last are the axis ends.
    /// </summary>
    internal static IReadOnlyList<double> Ticks(double min, double max)
    {
        if (!double.IsFinite(min) || !double.IsFinite(max) || max < min) throw new ArgumentOutOfRangeException(nameof(max), $"no axis from {min} to {max}");
        if (max - min < 1e-12) { min -= 0.5; max += 0.5; }
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10((max - min) / 5)));
        var (step, low, intervals) = new[] { 1, 2, 5, 10 }
            .Select(m => m * magnitude)
            .Select(s => (Step: s, Low: Math.Floor(min / s + 1e-9) * s, Intervals: (int)Math.Round(Math.Ceiling(max / s - 1e-9) - Math.Floor(min / s + 1e-9))))
            .Where(c => c.Intervals <= 8)
            .MinBy(c => Math.Abs(c.Intervals - 5));
        return Enumerable.Range(0, intervals + 1).Select(i => Math.Round(low + i * step, 10)).ToList();
    }
}
