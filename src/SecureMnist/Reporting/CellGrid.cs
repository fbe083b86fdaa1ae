using ScottPlot;

namespace SecureMnist.Reporting;

/// <summary>A table drawn as coloured cells with text in them (ScottPlot): heatmaps and the confusion matrix. The first row is on top.</summary>
internal static class CellGrid
{
    /// <summary>What one cell shows: its fill, its text and the text's colour.</summary>
    public readonly record struct Cell(Color Fill, string Text, Color Ink);

    public static void Save(string path, string title, string rowTitle, string columnTitle, IReadOnlyList<string> rows, IReadOnlyList<string> columns,
        Func<int, int, Cell> cell, int cellWidth, int cellHeight)
    {
        var plot = Charts.New(title, columnTitle, rowTitle);
        for (var r = 0; r < rows.Count; r++)
            for (var c = 0; c < columns.Count; c++)
            {
                var shown = cell(r, c);
                var rectangle = plot.Add.Rectangle(c, c + 1, r, r + 1);
                rectangle.FillColor = shown.Fill;
                rectangle.LineColor = Colors.White;
                rectangle.LineWidth = 2;
                var text = plot.Add.Text(shown.Text, c + 0.5, r + 0.5);
                text.LabelAlignment = Alignment.MiddleCenter;
                text.LabelFontSize = 13;
                text.LabelFontName = Fonts.SansFamily;
                text.LabelFontColor = shown.Ink;
            }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, columns.Count).Select(c => c + 0.5).ToArray(), [.. columns]);
        plot.Axes.Left.SetTicks(Enumerable.Range(0, rows.Count).Select(r => r + 0.5).ToArray(), [.. rows]);
        plot.Axes.Bottom.TickLabelStyle.FontSize = 13;
        plot.Axes.Left.TickLabelStyle.FontSize = 13;
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.SetLimits(0, Math.Max(1, columns.Count), Math.Max(1, rows.Count), 0); // top = 0: the first row on top
        plot.HideGrid();
        var labels = rows.Count == 0 ? 0 : rows.Max(r => Picture.TextWidth(r, 13));
        var left = 70 + (int)Math.Ceiling(labels);
        var width = Math.Max(left + columns.Count * cellWidth + 40, (int)Math.Ceiling(Math.Max(Picture.TextWidth(title, 22), Picture.TextWidth(columnTitle, 15))) + 60);
        Charts.Save(plot, path, width, 130 + rows.Count * cellHeight + 40);
    }
}
