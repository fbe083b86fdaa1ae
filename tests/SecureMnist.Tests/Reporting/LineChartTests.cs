using SecureMnist.Reporting;
using SkiaSharp;

namespace SecureMnist.Tests.Reporting;

public sealed class LineChartTests
{
    [Theory]
    [InlineData(0.0, 94.4, new[] { 0.0, 20, 40, 60, 80, 100 })]   // robust accuracy of several models
    [InlineData(98.2, 99.2, new[] { 98.2, 98.4, 98.6, 98.8, 99.0, 99.2 })]   // their clean accuracy
    [InlineData(1.0, 12.0, new[] { 0.0, 2, 4, 6, 8, 10, 12 })]   // epochs
    [InlineData(0.0, 0.4, new[] { 0.0, 0.1, 0.2, 0.3, 0.4 })]   // eps
    [InlineData(-3.0, 7.0, new[] { -4.0, -2, 0, 2, 4, 6, 8 })]
    [InlineData(5.0, 5.0, new[] { 4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6 })]   // one value: an axis around it
    public void Axes_tick_at_round_numbers_that_enclose_the_data(double min, double max, double[] expected)
    {
        Assert.Equal(expected, LineChart.Ticks(min, max));
    }

    [Fact]
    public void An_axis_needs_finite_ordered_ends()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LineChart.Ticks(2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LineChart.Ticks(double.NaN, 1));
    }

    [Fact]
    public void Series_that_coincide_both_stay_visible()
    {
        // A model PGD breaks completely: its PGD line and its worst-case line are the same points.
        var points = new List<(double X, double Y)> { (0, 99), (0.1, 47), (0.2, 0.4), (0.3, 0), (0.4, 0) };
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "curve.png");
        LineChart.Save(path, "coinciding", "eps", "accuracy (%)", [new Series("pgd", points), new Series("worst case", points)], 0, 100);

        using var bitmap = SKBitmap.Decode(path);
        int PlotPixelsOf(SKColor colour)
        {
            var count = 0;
            for (var y = 60; y < bitmap.Height - 70; y++)
                for (var x = 80; x < bitmap.Width - 220; x++)
                {
                    var p = bitmap.GetPixel(x, y);
                    if (Math.Abs(p.Red - colour.Red) + Math.Abs(p.Green - colour.Green) + Math.Abs(p.Blue - colour.Blue) < 40) count++;
                }
            return count;
        }
        Assert.True(PlotPixelsOf(new SKColor(31, 119, 180)) > 300, "the first series is hidden");
        Assert.True(PlotPixelsOf(new SKColor(214, 39, 40)) > 300, "the second series is hidden");
    }
}
