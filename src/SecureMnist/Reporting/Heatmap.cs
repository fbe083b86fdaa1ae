using System.Globalization;
using ScottPlot;

namespace SecureMnist.Reporting;

/// <summary>
/// A table of shares (0 to 1) drawn as a heatmap: one row per row label, one column per column label, each cell coloured from red
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
        CellGrid.Save(path, title, rowTitle, $"{columnTitle} ({(higherIsBetter ? "green: high, red: low" : "green: low, red: high")})", rows, columns, (r, c) =>
            values[r, c] is { } v
                ? new CellGrid.Cell(Colour(higherIsBetter ? v : 1 - v), (100 * v).ToString("0.#", CultureInfo.InvariantCulture) + "%", Colors.Black)
                : new CellGrid.Cell(new Color(220, 220, 220), "-", Colors.Black),
            cellWidth: 92, cellHeight: 40);
    }

    /// <summary>Red (0) to yellow (0.5) to green (1), light enough for black text.</summary>
    private static Color Colour(double goodness)
    {
        var g = Math.Clamp(goodness, 0, 1);
        return g < 0.5
            ? new Color(250, (byte)(130 + 240 * g), 120)
            : new Color((byte)(250 - 260 * (g - 0.5)), 250, 120);
    }
}
