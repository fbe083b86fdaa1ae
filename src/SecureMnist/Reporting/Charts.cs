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

    /// <summary>Saves as SVG when <paramref name="path"/> ends in .svg, else as PNG. A title wider than the data area is wrapped first.</summary>
    public static void Save(Plot plot, string path, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(plot);
        ArgumentNullException.ThrowIfNull(path);
        FitTitle(plot, width, height);
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
            AtomicFile.WriteAllText(path, plot.GetSvgXml(width, height));
        else
            AtomicFile.WriteAllBytes(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }

    /// <summary>
    /// ScottPlot centres the title over the data area, so a title wider than that area (a legend on the right narrows it) runs off the
    /// figure's left edge. Lays the figure out once to learn the area's width, then wraps the title to it.
    /// </summary>
    private static void FitTitle(Plot plot, int width, int height)
    {
        var label = plot.Axes.Title.Label;
        if (string.IsNullOrEmpty(label.Text) || label.Text.Contains('\n', StringComparison.Ordinal)) return;
        using (plot.GetImage(width, height)) { }
        var room = plot.RenderManager.LastRender.DataRect.Width;
        label.Text = Wrap(label.Text, room, label.FontSize);
    }

    /// <summary>
    /// <paramref name="text"/> broken at spaces into lines no wider than <paramref name="room"/> pixels at <paramref name="fontSize"/>;
    /// a word wider than the room keeps a line of its own.
    /// </summary>
    public static string Wrap(string text, float room, float fontSize)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = new List<string>();
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var longer = line.Length == 0 ? word : $"{line} {word}";
            if (line.Length > 0 && Picture.TextWidth(longer, fontSize) > room)
            {
                lines.Add(line);
                line = word;
            }
            else
            {
                line = longer;
            }
        }
        if (line.Length > 0) lines.Add(line);
        return string.Join('\n', lines);
    }
}
