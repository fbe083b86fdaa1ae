using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>A named series of (x, y) points.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>
/// Draws line charts as PNG: axes with ticks, a legend, and per series a line and markers in its own colour, dash pattern
/// and marker shape, the markers hollow, so series that coincide (PGD and the worst case of a model PGD breaks, two models
/// at one point) stay visible under each other.
/// </summary>
public static class LineChart
{
    private static readonly SKColor[] Palette =
    [
        new(31, 119, 180), new(214, 39, 40), new(44, 160, 44), new(255, 127, 14), new(148, 103, 189), new(140, 86, 75), new(0, 0, 0),
    ];

    private static readonly float[]?[] Dashes = [null, [10, 6], [3, 4], [12, 4, 3, 4]];

    private enum Marker { Circle, Square, Triangle, Diamond }

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
            var colour = Palette[s % Palette.Length];
            var dash = Dashes[s % Dashes.Length];
            using var line = new SKPaint { Color = colour, StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var effect = dash is null ? null : SKPathEffect.CreateDash(dash, 0);
            line.PathEffect = effect;
            using var marker = new SKPaint { Color = colour, StrokeWidth = 2f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            var shape = (Marker)(s % 4);
            var ordered = series[s].Points.OrderBy(p => p.X).ToList();
            using (var polyline = new SKPath())
            {
                polyline.AddPoly(ordered.Select(p => new SKPoint(X(p.X), frame.Y(p.Y))).ToArray(), close: false);
                frame.Canvas.DrawPath(polyline, line);
            }
            foreach (var point in ordered) DrawMarker(frame.Canvas, shape, X(point.X), frame.Y(point.Y), marker);
            frame.Legend(s, series[s].Name, (canvas, box) =>
            {
                canvas.DrawLine(box.Left, box.MidY, box.Right, box.MidY, line);
                DrawMarker(canvas, shape, box.MidX, box.MidY, marker);
            });
        }
        frame.Save(path);
    }

    private static void DrawMarker(SKCanvas canvas, Marker shape, float x, float y, SKPaint paint)
    {
        const float r = 5;
        switch (shape)
        {
            // The circle is wider than the square, so a square on the same point leaves it showing.
            case Marker.Circle: canvas.DrawCircle(x, y, r + 1.5f, paint); break;
            case Marker.Square: canvas.DrawRect(x - r + 1, y - r + 1, 2 * r - 2, 2 * r - 2, paint); break;
            default:
                using (var path = new SKPath())
                {
                    if (shape == Marker.Triangle) path.AddPoly([new(x, y - r - 1), new(x + r + 1, y + r), new(x - r - 1, y + r)]);
                    else path.AddPoly([new(x, y - r - 2), new(x + r + 2, y), new(x, y + r + 2), new(x - r - 2, y)]);
                    canvas.DrawPath(path, paint);
                }
                break;
        }
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
