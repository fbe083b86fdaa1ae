using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>Draws a confusion matrix as a PNG heatmap: rows are true labels, columns predictions, counts in cells.</summary>
public static class ConfusionMatrixPlot
{
    public static void Save(int[][] matrix, string title, string path)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        const int cell = 56, left = 90, top = 80, margin = 30;
        var classes = matrix.Length;
        var width = left + classes * cell + margin;
        var height = top + classes * cell + 60;
        using var picture = new Picture(width, height, title);
        var canvas = picture.Canvas;
        var (font, ink) = (picture.Text, picture.Ink);
        var small = picture.Font(12);
        var fill = picture.Own(new SKPaint { Style = SKPaintStyle.Fill });
        canvas.DrawText("predicted label", left + classes * cell / 2f, top - 28, SKTextAlign.Center, font, ink);

        for (var row = 0; row < classes; row++)
        {
            var rowTotal = Math.Max(1, matrix[row].Sum());
            canvas.DrawText(row.ToString(System.Globalization.CultureInfo.InvariantCulture), left - 14, top + row * cell + cell / 2f + 5, SKTextAlign.Right, font, ink);
            for (var column = 0; column < classes; column++)
            {
                if (row == 0)
                    canvas.DrawText(column.ToString(System.Globalization.CultureInfo.InvariantCulture), left + column * cell + cell / 2f, top - 8, SKTextAlign.Center, font, ink);
                // Colour by share of the true class, on a log scale so rare confusions stay visible.
                var share = (double)matrix[row][column] / rowTotal;
                var intensity = share <= 0 ? 0 : Math.Clamp(1 + Math.Log10(share) / 4, 0.05, 1);
                fill.Color = row == column
                    ? new SKColor((byte)(255 - 200 * intensity), (byte)(255 - 120 * intensity), (byte)(255 - 60 * intensity))
                    : new SKColor(255, (byte)(255 - 180 * intensity), (byte)(255 - 200 * intensity));
                var rect = SKRect.Create(left + column * cell, top + row * cell, cell - 2, cell - 2);
                canvas.DrawRect(rect, fill);
                using var text = new SKPaint { Color = intensity > 0.7 && row == column ? SKColors.White : SKColors.Black, IsAntialias = true };
                canvas.DrawText(matrix[row][column].ToString(System.Globalization.CultureInfo.InvariantCulture), rect.MidX, rect.MidY + 5, SKTextAlign.Center, small, text);
            }
        }
        canvas.Save();
        canvas.RotateDegrees(-90, 22, top + classes * cell / 2f);
        canvas.DrawText("true label", 22, top + classes * cell / 2f + 5, SKTextAlign.Center, font, ink);
        canvas.Restore();
        var total = matrix.Sum(r => r.Sum());
        var correct = Enumerable.Range(0, classes).Sum(i => matrix[i][i]);
        canvas.DrawText($"{total} images, {correct} correct ({100.0 * correct / Math.Max(1, total):F2}%)", width / 2f, height - 20, SKTextAlign.Center, font, ink);

        picture.Save(path);
    }
}
