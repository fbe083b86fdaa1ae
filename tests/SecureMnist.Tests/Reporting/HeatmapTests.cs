using SecureMnist.Reporting;
using SkiaSharp;

namespace SecureMnist.Tests.Reporting;

public sealed class HeatmapTests
{
    [Fact]
    public void A_long_title_widens_the_picture_so_it_is_not_clipped()
    {
        var title = "spectral-signatures: clean target-class samples flagged, by attack and poison rate (target 7, seed 1; mean over cells)";
        var path = Path.Combine(Path.GetTempPath(), $"heatmap-{Guid.NewGuid():N}.png");
        try
        {
            Heatmap.Save(path, title, "attack", "rate", ["clean-label-adversarial", "corner-square"], ["1%", "3%"], new double?[,] { { 0.5, null }, { 1, 0 } });
            using var bitmap = SKBitmap.Decode(path);
            Assert.True(bitmap.Width >= Picture.TextWidth(title) + 40, $"{bitmap.Width} px for a title {Picture.TextWidth(title):F0} px wide");
            // The title's pixels reach neither edge: the first and last columns of the title band are white.
            static bool White(SKColor c) => c.Red > 250 && c.Green > 250 && c.Blue > 250;
            Assert.All(Enumerable.Range(10, 30), y => Assert.True(White(bitmap.GetPixel(0, y)) && White(bitmap.GetPixel(bitmap.Width - 1, y))));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
