using SecureMnist.Reporting;
using SkiaSharp;

namespace SecureMnist.Tests.Reporting;

public sealed class LineChartTests
{
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
            for (var y = 0; y < bitmap.Height; y++)
                for (var x = 0; x < bitmap.Width; x++)
                {
                    var p = bitmap.GetPixel(x, y);
                    if (Math.Abs(p.Red - colour.Red) + Math.Abs(p.Green - colour.Green) + Math.Abs(p.Blue - colour.Blue) < 40) count++;
                }
            return count;
        }
        Assert.True(PlotPixelsOf(new SKColor(31, 119, 180)) > 300, "the first series is hidden");
        Assert.True(PlotPixelsOf(new SKColor(214, 39, 40)) > 300, "the second series is hidden");
    }

    [Fact]
    public void A_title_longer_than_the_data_area_is_wrapped_not_cut_at_the_edge()
    {
        // ScottPlot centres the title over the data area; with the legend on the right, a long title ran off the figure's left edge.
        const string title = "membership inference on out/privacy/backdoor: 5000 members vs 5000 non-members, 8 shadows";
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "roc.png");
        LineChart.Save(path, title, "false-positive rate (log10)", "true-positive rate (log10)",
            [new Series("loss threshold, AUC 0.504", [(-4, -4), (0, 0)]), new Series("LiRA offline (4 OUT per image), AUC 0.532", [(-4, -2), (0, 0)])], -4, 0);

        using var bitmap = SKBitmap.Decode(path);
        var inkAtEdges = 0;
        for (var y = 0; y < 80; y++)
            foreach (var x in new[] { 0, 1, 2, bitmap.Width - 3, bitmap.Width - 2, bitmap.Width - 1 })
                if (bitmap.GetPixel(x, y) is var p && p.Red + p.Green + p.Blue < 600) inkAtEdges++;
        Assert.Equal(0, inkAtEdges);
        var room = Picture.TextWidth("membership inference on out/privacy/backdoor: 5000", 18) + 1;
        Assert.Equal(["membership inference on out/privacy/backdoor: 5000", "members vs 5000 non-members, 8 shadows"], Charts.Wrap(title, room, 18).Split('\n'));
    }

    [Theory]
    [InlineData("short title", 400, "short title")]
    [InlineData("a b c", 0, "a\nb\nc")]
    [InlineData("", 100, "")]
    public void Wrapping_breaks_at_spaces_and_keeps_a_word_too_long_for_the_room_whole(string text, float room, string expected) =>
        Assert.Equal(expected, Charts.Wrap(text, room, 18));

    [Fact]
    public void A_chart_is_svg_when_its_path_says_so()
    {
        var directory = TestPaths.NewScratchDirectory();
        var path = Path.Combine(directory, "curve.svg");
        LineChart.Save(path, "an eps sweep", "eps", "accuracy (%)", [new Series("pgd", [(0, 99), (0.3, 0)])], 0, 100);
        var svg = System.Xml.Linq.XDocument.Load(path);
        Assert.Equal("svg", svg.Root!.Name.LocalName);
        Assert.Contains("an eps sweep", File.ReadAllText(path), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => LineChart.Save(Path.Combine(directory, "nan.png"), "t", "x", "y", [new Series("s", [(0, double.NaN)])]));
    }
}
