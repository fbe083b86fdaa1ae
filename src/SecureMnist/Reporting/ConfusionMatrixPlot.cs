using System.Globalization;
using ScottPlot;

namespace SecureMnist.Reporting;

/// <summary>A confusion matrix as a heatmap: rows are true labels, columns predictions, counts in cells, coloured by share of the true class.</summary>
public static class ConfusionMatrixPlot
{
    public static void Save(int[][] matrix, string title, string path)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var classes = matrix.Length;
        var labels = Enumerable.Range(0, classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        var total = matrix.Sum(r => r.Sum());
        var correct = Enumerable.Range(0, classes).Sum(i => matrix[i][i]);
        var summary = string.Create(CultureInfo.InvariantCulture, $"predicted label; {total} images, {correct} correct ({100.0 * correct / Math.Max(1, total):F2}%)");
        CellGrid.Save(path, title, "true label", summary, labels, labels, (row, column) =>
        {
            // Colour by share of the true class, on a log scale so rare confusions stay visible.
            var share = (double)matrix[row][column] / Math.Max(1, matrix[row].Sum());
            var intensity = share <= 0 ? 0 : Math.Clamp(1 + Math.Log10(share) / 4, 0.05, 1);
            var fill = row == column
                ? new Color((byte)(255 - 200 * intensity), (byte)(255 - 120 * intensity), (byte)(255 - 60 * intensity))
                : new Color(255, (byte)(255 - 180 * intensity), (byte)(255 - 200 * intensity));
            var ink = intensity > 0.7 && row == column ? Colors.White : Colors.Black;
            return new CellGrid.Cell(fill, matrix[row][column].ToString(CultureInfo.InvariantCulture), ink);
        }, cellWidth: 56, cellHeight: 56);
    }
}
