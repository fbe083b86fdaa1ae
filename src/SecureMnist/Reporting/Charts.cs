using ScottPlot;
using SecureMnist.IO;

namespace SecureMnist.Reporting;

/// <summary>
/// What every chart shares, on ScottPlot 5: the report typeface, the palette, and saving as PNG or SVG by the file's extension
/// (written atomically, so a reader never sees half a picture).
/// </summary>
internal static class Charts
{
    /// <summary>The series colours, in order (the first two are the ones the tests look for).</summary>
    public static readonly Color[] Palette =
    [
        new(31, 119, 180), new(214, 39, 40), new(44, 160, 44), new(255, 127, 14), new(148, 103, 189), new(140, 86, 75), new(0, 0, 0),
    ];

    public static readonly Color Alarm = new(214, 39, 40);

    /// <summary>A plot with the title, the axis labels and the report typeface.</summary>
    public static Plot New(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Font.Set(Fonts.SansFamily);
        plot.Title(title);
        plot.Axes.Title.Label.FontSize = 18;
        plot.XLabel(xLabel, 14);
        plot.YLabel(yLabel, 14);
        // About six labelled ticks per axis, as a reader scans them (ScottPlot's default packs them as densely as they fit).
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { TargetTickCount = 6 };
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { TargetTickCount = 8 };
        return plot;
    }

    /// <summary>Saves as SVG when <paramref name="path"/> ends in .svg, else as PNG.</summary>
    public static void Save(Plot plot, string path, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(plot);
        ArgumentNullException.ThrowIfNull(path);
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
            AtomicFile.WriteAllText(path, plot.GetSvgXml(width, height));
        else
            AtomicFile.WriteAllBytes(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }
}
