using System.Globalization;
using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>
/// A table of shares (0 to 1) drawn as a PNG heatmap: one row per row label, one column per column label, each cell coloured from red
/// (0) through yellow to green (1), or the other way round when lower is better, with its percentage written in it; a missing value
/// (null) is a grey cell marked "-".
/// </summary>
public static class Heatmap
{
    public static void Save(string path, string title, string rowTitle, string columnTitle, IReadOnlyList<string> rows, IReadOnlyList<string> columns,
        double?[,] values, bool higherIsBetter = true)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(values);
        if (values.GetLength(0) != rows.Count || values.GetLength(1) != columns.Count)
            throw new ArgumentException($"{values.GetLength(0)}x{values.GetLength(1)} values for {rows.Count} rows and {columns.Count} columns");
        const int cellWidth = 92, cellHeight = 40, top = 100, margin = 30;
        var left = 20 + (int)Math.Ceiling(Math.Max(Picture.TextWidth(rowTitle, 14), rows.Count == 0 ? 0 : rows.Max(r => Picture.TextWidth(r, 13))));
        var width = Math.Max(left + columns.Count * cellWidth + margin, (int)Math.Ceiling(Picture.TextWidth(title)) + 2 * margin);
        var height = top + rows.Count * cellHeight + 50;
        using var picture = new Picture(width, height, title);
        var canvas = picture.Canvas;
        var (font, ink) = (picture.Text, picture.Ink);
        var small = picture.Font(13);
        var fill = picture.Own(new SKPaint { Style = SKPaintStyle.Fill });
        canvas.DrawText(columnTitle, left + columns.Count * cellWidth / 2f, top - 36, SKTextAlign.Center, font, ink);
        canvas.DrawText(rowTitle, left - 10, top - 10, SKTextAlign.Right, font, ink);
        for (var c = 0; c < columns.Count; c++)
            canvas.DrawText(columns[c], left + c * cellWidth + cellWidth / 2f, top - 10, SKTextAlign.Center, small, ink);
        for (var r = 0; r < rows.Count; r++)
        {
            canvas.DrawText(rows[r], left - 10, top + r * cellHeight + cellHeight / 2f + 5, SKTextAlign.Right, small, ink);
            for (var c = 0; c < columns.Count; c++)
            {
                var rect = SKRect.Create(left + c * cellWidth, top + r * cellHeight, cellWidth - 2, cellHeight - 2);
                var value = values[r, c];
                fill.Color = value is { } v ? Colour(higherIsBetter ? v : 1 - v) : new SKColor(220, 220, 220);
                canvas.DrawRect(rect, fill);
                var text = value is { } shown ? (100 * shown).ToString("0.#", CultureInfo.InvariantCulture) + "%" : "-";
                canvas.DrawText(text, rect.MidX, rect.MidY + 5, SKTextAlign.Center, small, ink);
            }
        }
        canvas.DrawText(higherIsBetter ? "green: high, red: low" : "green: low, red: high", width / 2f, height - 18, SKTextAlign.Center, small, ink);
        picture.Save(path);
    }

    /// <summary>Red (0) to yellow (0.5) to green (1), light enough for black text.</summary>
    private static SKColor Colour(double goodness)
    {
        var g = Math.Clamp(goodness, 0, 1);
        return g < 0.5
            ? new SKColor(250, (byte)(130 + 240 * g), 120)
            : new SKColor((byte)(250 - 260 * (g - 0.5)), 250, 120);
    }
}
