using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>One row of an image grid: the images (28x28 floats in [0, 1], or signed perturbations) and a caption.</summary>
public sealed record GridRow(string Caption, IReadOnlyList<(float[] Pixels, bool Signed, string Label)> Cells);

/// <summary>Draws rows of small grey-scale images, each scaled up, with a label under each and a caption per row.</summary>
public static class ImageGrid
{
    public static void Save(string path, string title, IReadOnlyList<string> columnTitles, IReadOnlyList<GridRow> rows, int side = 28, int scale = 4)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(columnTitles);
        var cell = side * scale;
        const int gap = 16, left = 16, top = 70, labelHeight = 22, captionWidth = 160;
        var columns = rows.Max(r => r.Cells.Count);
        var width = left + captionWidth + columns * (cell + gap);
        var height = top + rows.Count * (cell + labelHeight + gap) + 10;
        using var picture = new Picture(width, height, title);
        var canvas = picture.Canvas;
        var ink = picture.Ink;
        var font = picture.Font(13);
        for (var c = 0; c < columnTitles.Count; c++)
            canvas.DrawText(columnTitles[c], left + captionWidth + c * (cell + gap) + cell / 2f, top - 12, SKTextAlign.Center, font, ink);

        for (var r = 0; r < rows.Count; r++)
        {
            var y = top + r * (cell + labelHeight + gap);
            canvas.DrawText(rows[r].Caption, left, y + cell / 2f, SKTextAlign.Left, font, ink);
            for (var c = 0; c < rows[r].Cells.Count; c++)
            {
                var (pixels, signed, label) = rows[r].Cells[c];
                var x = left + captionWidth + c * (cell + gap);
                using var bitmap = ToBitmap(pixels, side, signed);
                using var image = SKImage.FromBitmap(bitmap);
                canvas.DrawImage(image, SKRect.Create(x, y, cell, cell), new SKSamplingOptions(SKFilterMode.Nearest));
                canvas.DrawText(label, x + cell / 2f, y + cell + 16, SKTextAlign.Center, font, ink);
            }
        }
        picture.Save(path);
    }

    // Images: black on white like ink on paper. Signed perturbations: red positive, blue negative, scaled to their largest magnitude.
    private static SKBitmap ToBitmap(float[] pixels, int side, bool signed)
    {
        var bitmap = new SKBitmap(side, side);
        var scale = signed ? Math.Max(1e-6f, pixels.Max(Math.Abs)) : 1f;
        for (var i = 0; i < side * side; i++)
        {
            var value = pixels[i] / scale;
            SKColor color;
            if (signed)
            {
                var strength = (byte)(255 - Math.Clamp(Math.Abs(value), 0, 1) * 255);
                color = value >= 0 ? new SKColor(255, strength, strength) : new SKColor(strength, strength, 255);
            }
            else
            {
                var grey = (byte)(255 - Math.Clamp(value, 0, 1) * 255);
                color = new SKColor(grey, grey, grey);
            }
            bitmap.SetPixel(i % side, i / side, color);
        }
        return bitmap;
    }
}
