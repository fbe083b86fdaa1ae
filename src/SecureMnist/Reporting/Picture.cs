using SecureMnist.IO;
using SkiaSharp;

namespace SecureMnist.Reporting;

/// <summary>A white canvas with the report typeface, a title, black ink and fonts, saved atomically as PNG.</summary>
internal sealed class Picture : IDisposable
{
    private readonly SKSurface surface;
    private readonly SKTypeface typeface;
    private readonly List<IDisposable> owned = [];

    public Picture(int width, int height, string title)
    {
        surface = SKSurface.Create(new SKImageInfo(width, height));
        Canvas.Clear(SKColors.White);
        typeface = Fonts.Sans();
        Ink = Own(new SKPaint { Color = SKColors.Black, IsAntialias = true });
        Text = Font(14);
        Canvas.DrawText(title, width / 2f, 30, SKTextAlign.Center, Font(20), Ink);
    }

    /// <summary>The width in pixels <paramref name="text"/> takes in the report typeface at <paramref name="size"/> (the title is 20).</summary>
    public static float TextWidth(string text, float size = 20)
    {
        using var typeface = Fonts.Sans();
        using var font = new SKFont(typeface, size);
        return font.MeasureText(text);
    }

    public SKCanvas Canvas => surface.Canvas;
    public SKPaint Ink { get; }
    /// <summary>The 14-pixel font for labels.</summary>
    public SKFont Text { get; }

    public SKFont Font(float size) => Own(new SKFont(typeface, size));

    public T Own<T>(T resource) where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    public void Save(string path)
    {
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, png.ToArray());
    }

    public void Dispose()
    {
        foreach (var resource in owned) resource.Dispose();
        typeface.Dispose();
        surface.Dispose();
    }
}
