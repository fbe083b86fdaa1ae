using SkiaSharp;

namespace SecureMnist.Serving;

/// <summary>How colour images are treated: converted to luminance, or refused.</summary>
public enum ColourPolicy
{
    Luminance,
    Reject,
}

/// <summary>Caps on untrusted images, checked from the header before any pixel is decoded.</summary>
public sealed record ImageLimits(int MaxSide = 2048, long MaxPixels = 4_000_000, ColourPolicy Colour = ColourPolicy.Luminance)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxSide, 28);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPixels, 784);
    }
}

/// <summary>An input the service refuses, with a message for the caller.</summary>
public sealed class InputRejectedException(string message) : Exception(message);

/// <summary>
/// Turns untrusted uploads into the 28x28 white-on-black digits the model was trained on: PNG/JPEG decoding with
/// header-checked size caps, a colour policy, alpha composited onto black, and MNIST's own normalisation for images of
/// other sizes (the ink's bounding box scaled to fit 20x20, then centred by centre of mass in 28x28).
/// </summary>
public static class DigitImage
{
    public const int Side = 28;
    public const int Pixels = Side * Side;

    /// <summary>A 28x28 grey digit (784 bytes, as MNIST stores it) as PNG bytes, as a client would upload it.</summary>
    public static byte[] Png(ReadOnlySpan<byte> pixels)
    {
        if (pixels.Length != Pixels) throw new ArgumentException($"a digit has {Pixels} pixels, not {pixels.Length}", nameof(pixels));
        using var bitmap = new SKBitmap(new SKImageInfo(Side, Side, SKColorType.Gray8, SKAlphaType.Opaque));
        pixels.CopyTo(bitmap.GetPixelSpan());
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }

    /// <summary>Decodes PNG or JPEG bytes into 784 values in [0, 1]; throws <see cref="InputRejectedException"/> with the reason.</summary>
    public static float[] Decode(ReadOnlySpan<byte> encoded, ImageLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (encoded.Length == 0) throw new InputRejectedException("the image is empty");
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new InputRejectedException("the body is not a decodable image");
        if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
            throw new InputRejectedException($"image format {codec.EncodedFormat} is not accepted; send PNG or JPEG");
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        if (width <= 0 || height <= 0) throw new InputRejectedException("the image has no pixels");
        if (width > limits.MaxSide || height > limits.MaxSide || (long)width * height > limits.MaxPixels)
            throw new InputRejectedException($"the image is {width}x{height}; at most {limits.MaxSide} pixels a side and {limits.MaxPixels:N0} pixels are accepted");
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize];
        var result = codec.GetPixels(info, rgba);
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
            throw new InputRejectedException($"the image could not be decoded ({result})");
        if (result == SKCodecResult.IncompleteInput) throw new InputRejectedException("the image data is truncated");
        var gray = new float[width * height];
        var coloured = 0;
        for (var i = 0; i < gray.Length; i++)
        {
            int r = rgba[4 * i], g = rgba[(4 * i) + 1], b = rgba[(4 * i) + 2], a = rgba[(4 * i) + 3];
            if (Math.Max(Math.Abs(r - g), Math.Max(Math.Abs(g - b), Math.Abs(r - b))) > 24) coloured++;
            gray[i] = (float)((0.299 * r) + (0.587 * g) + (0.114 * b)) / 255f * (a / 255f);
        }
        if (limits.Colour == ColourPolicy.Reject && coloured > gray.Length / 100)
            throw new InputRejectedException($"the image is in colour ({coloured} coloured pixels); send a grayscale digit");
        return Normalise(gray, width, height);
    }

    /// <summary>Validates 784 (or 28x28) raw values: finite and in [0, 1].</summary>
    public static float[] FromValues(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count != Pixels) throw new InputRejectedException($"expected {Pixels} values (28x28), got {values.Count}");
        var result = new float[Pixels];
        for (var i = 0; i < Pixels; i++)
        {
            var v = values[i];
            if (!double.IsFinite(v)) throw new InputRejectedException($"value {i} is not a finite number");
            if (v is < 0 or > 1) throw new InputRejectedException($"value {i} is {v}; values must be in [0, 1] (white ink on black)");
            result[i] = (float)v;
        }
        return result;
    }

    /// <summary>MNIST's normalisation for an arbitrary-size grayscale image; 28x28 inputs pass through unchanged.</summary>
    public static float[] Normalise(float[] gray, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(gray);
        if (width == Side && height == Side) return gray;
        int left = width, top = height, right = -1, bottom = -1;
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                if (gray[(y * width) + x] > 0.1f)
                    (left, top, right, bottom) = (Math.Min(left, x), Math.Min(top, y), Math.Max(right, x), Math.Max(bottom, y));
        var output = new float[Pixels];
        if (right < 0) return output; // blank: left for the statistics check to refuse
        int boxWidth = right - left + 1, boxHeight = bottom - top + 1;
        var scale = 20.0 / Math.Max(boxWidth, boxHeight);
        int glyphWidth = Math.Max(1, (int)Math.Round(boxWidth * scale)), glyphHeight = Math.Max(1, (int)Math.Round(boxHeight * scale));
        var glyph = ResizeArea(gray, width, left, top, boxWidth, boxHeight, glyphWidth, glyphHeight);
        double mass = 0, cx = 0, cy = 0;
        for (var y = 0; y < glyphHeight; y++)
            for (var x = 0; x < glyphWidth; x++)
            {
                var v = glyph[(y * glyphWidth) + x];
                (mass, cx, cy) = (mass + v, cx + (v * x), cy + (v * y));
            }
        var offsetX = Math.Clamp((int)Math.Round(14 - (cx / mass) - 0.5), 0, Side - glyphWidth);
        var offsetY = Math.Clamp((int)Math.Round(14 - (cy / mass) - 0.5), 0, Side - glyphHeight);
        for (var y = 0; y < glyphHeight; y++)
            for (var x = 0; x < glyphWidth; x++)
                output[((y + offsetY) * Side) + x + offsetX] = Math.Clamp(glyph[(y * glyphWidth) + x], 0, 1);
        return output;
    }

    /// <summary>Area-weighted resampling of a rectangle of <paramref name="source"/>: each output pixel averages the source area it covers.</summary>
    private static float[] ResizeArea(float[] source, int stride, int left, int top, int width, int height, int outWidth, int outHeight)
    {
        var output = new float[outWidth * outHeight];
        double sx = (double)width / outWidth, sy = (double)height / outHeight;
        for (var oy = 0; oy < outHeight; oy++)
        {
            double y0 = oy * sy, y1 = (oy + 1) * sy;
            for (var ox = 0; ox < outWidth; ox++)
            {
                double x0 = ox * sx, x1 = (ox + 1) * sx, sum = 0, area = 0;
                for (var y = (int)y0; y < Math.Min(height, (int)Math.Ceiling(y1)); y++)
                {
                    var wy = Math.Min(y + 1, y1) - Math.Max(y, y0);
                    for (var x = (int)x0; x < Math.Min(width, (int)Math.Ceiling(x1)); x++)
                    {
                        var w = wy * (Math.Min(x + 1, x1) - Math.Max(x, x0));
                        sum += w * source[((top + y) * stride) + left + x];
                        area += w;
                    }
                }
                output[(oy * outWidth) + ox] = (float)(sum / area);
            }
        }
        return output;
    }
}
