using System.Globalization;
using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>
/// What every chart shares: the titled picture, the plot area, a y axis with grid lines at round ticks, the axis labels,
/// a legend column on the right, and both axes, drawn last.
/// </summary>
internal sealed class ChartFrame : IDisposable
{
    public const int Left = 80, Right = 220, Top = 60, Bottom = 70;
    private readonly double y0, y1;
    private readonly SKPaint grid;

    public ChartFrame(int width, int height, string title, string xLabel, string yLabel, IReadOnlyList<double> yTicks)
    {
        ArgumentNullException.ThrowIfNull(yTicks);
        Picture = new Picture(width, height, title);
        PlotWidth = width - Left - Right;
        PlotHeight = height - Top - Bottom;
        (y0, y1) = (yTicks[0], yTicks[^1]);
        grid = Picture.Own(new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 });
        foreach (var tick in yTicks)
        {
            Canvas.DrawLine(Left, Y(tick), Left + PlotWidth, Y(tick), grid);
            Canvas.DrawText(Format(tick), Left - 8, Y(tick) + 5, SKTextAlign.Right, Picture.Text, Picture.Ink);
        }
        Canvas.DrawText(xLabel, Left + PlotWidth / 2f, height - 20, SKTextAlign.Center, Picture.Text, Picture.Ink);
        Canvas.Save();
        Canvas.RotateDegrees(-90, 22, Top + PlotHeight / 2f);
        Canvas.DrawText(yLabel, 22, Top + PlotHeight / 2f, SKTextAlign.Center, Picture.Text, Picture.Ink);
        Canvas.Restore();
    }

    public Picture Picture { get; }
    public SKCanvas Canvas => Picture.Canvas;
    public int PlotWidth { get; }
    public int PlotHeight { get; }
    public float Y(double y) => Top + PlotHeight - (float)((y - y0) / (y1 - y0) * PlotHeight);

    /// <summary>A label under the x axis at <paramref name="x"/>, with a vertical grid line when asked.</summary>
    public void XTick(float x, string label, bool gridLine)
    {
        if (gridLine) Canvas.DrawLine(x, Top, x, Top + PlotHeight, grid);
        Canvas.DrawText(label, x, Top + PlotHeight + 22, SKTextAlign.Center, Picture.Text, Picture.Ink);
    }

    /// <summary>The <paramref name="row"/>th legend entry: a sample drawn by <paramref name="sample"/> in a 25-pixel box, then the name.</summary>
    public void Legend(int row, string name, Action<SKCanvas, SKRect> sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        var x = Left + PlotWidth + 20;
        var y = Top + 10 + row * 24;
        sample(Canvas, SKRect.Create(x, y - 7, 25, 14));
        Canvas.DrawText(name, x + 32, y + 5, SKTextAlign.Left, Picture.Text, Picture.Ink);
    }

    public static string Format(double value) => Math.Abs(value) >= 100 ? value.ToString("F0", CultureInfo.InvariantCulture) : value.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>Draws the axes over whatever the chart drew, and saves the PNG.</summary>
    public void Save(string path)
    {
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1.5f, IsAntialias = true };
        Canvas.DrawLine(Left, Top + PlotHeight, Left + PlotWidth, Top + PlotHeight, axis);
        Canvas.DrawLine(Left, Top, Left, Top + PlotHeight, axis);
        Picture.Save(path);
    }

    public void Dispose() => Picture.Dispose();
}
