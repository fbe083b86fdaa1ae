using System.Globalization;
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
        var (y0, y1) = (yTicks[0], yTicks[^1]);
        const int left = 80, right = 220, top = 60, bottom = 70;
        var plotWidth = width - left - right;
        var plotHeight = height - top - bottom;
        float X(double x) => left + (float)((x - x0) / (x1 - x0) * plotWidth);
        float Y(double y) => top + plotHeight - (float)((y - y0) / (y1 - y0) * plotHeight);

        using var picture = new Picture(width, height, title);
        var canvas = picture.Canvas;
        var (font, ink) = (picture.Text, picture.Ink);
        var grid = picture.Own(new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 });
        var axis = picture.Own(new SKPaint { Color = SKColors.Black, StrokeWidth = 1.5f, IsAntialias = true });
        foreach (var yValue in yTicks)
        {
            canvas.DrawLine(left, Y(yValue), left + plotWidth, Y(yValue), grid);
            canvas.DrawText(Format(yValue), left - 8, Y(yValue) + 5, SKTextAlign.Right, font, ink);
        }
        foreach (var xValue in xTicks)
        {
            canvas.DrawLine(X(xValue), top, X(xValue), top + plotHeight, grid);
            canvas.DrawText(Format(xValue), X(xValue), top + plotHeight + 22, SKTextAlign.Center, font, ink);
        }
        canvas.DrawLine(left, top + plotHeight, left + plotWidth, top + plotHeight, axis);
        canvas.DrawLine(left, top, left, top + plotHeight, axis);
        canvas.DrawText(xLabel, left + plotWidth / 2f, height - 20, SKTextAlign.Center, font, ink);
        canvas.Save();
        canvas.RotateDegrees(-90, 22, top + plotHeight / 2f);
        canvas.DrawText(yLabel, 22, top + plotHeight / 2f, SKTextAlign.Center, font, ink);
        canvas.Restore();

        for (var s = 0; s < series.Count; s++)
        {
            using var line = new SKPaint { Color = Palette[s % Palette.Length], StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var marker = new SKPaint { Color = Palette[s % Palette.Length], IsAntialias = true, Style = SKPaintStyle.Fill };
            var ordered = series[s].Points.OrderBy(p => p.X).ToList();
            for (var i = 1; i < ordered.Count; i++)
                canvas.DrawLine(X(ordered[i - 1].X), Y(ordered[i - 1].Y), X(ordered[i].X), Y(ordered[i].Y), line);
            foreach (var point in ordered) canvas.DrawCircle(X(point.X), Y(point.Y), 4, marker);
            var legendY = top + 10 + s * 24;
            canvas.DrawLine(left + plotWidth + 20, legendY, left + plotWidth + 45, legendY, line);
            canvas.DrawText(series[s].Name, left + plotWidth + 52, legendY + 5, SKTextAlign.Left, font, ink);
        }
        picture.Save(path);
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

    private static string Format(double value) => Math.Abs(value) >= 100 ? value.ToString("F0", CultureInfo.InvariantCulture) : value.ToString("0.###", CultureInfo.InvariantCulture);
}
