using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>The typeface for labels in pictures: DejaVu Sans when installed (fonts-dejavu-core), else Skia's default.</summary>
internal static class Fonts
{
    /// <summary>The family charts ask for by name (ScottPlot falls back to its default when it is not installed).</summary>
    public const string SansFamily = "DejaVu Sans";

    private static readonly string[] Candidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];

    public static SKTypeface Sans() =>
        Candidates.Where(File.Exists).Select(SKTypeface.FromFile).FirstOrDefault(t => t is not null) ?? SKTypeface.Default;
}
