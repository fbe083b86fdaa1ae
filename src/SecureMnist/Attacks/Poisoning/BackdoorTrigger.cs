using static TorchSharp.torch;

namespace SecureMnist.Attacks.Poisoning;

public enum TriggerPattern
{
    /// <summary>A solid square (the seeds' 3x3 white square).</summary>
    Square,
    /// <summary>Alternating on/off pixels, a pattern no digit stroke contains.</summary>
    Checkerboard,
    /// <summary>
    /// Chen et al. 2017's blended trigger: a fixed random image (uniform pixels from <see cref="BackdoorTrigger.PatternSeed"/>) mixed into
    /// the whole image, x' = (1 - alpha) x + alpha p, so no patch stands out.
    /// </summary>
    Blend,
}

/// <summary>
/// A trigger stamped onto images. For a patch (square or checkerboard), Row and Column are its top-left pixel; null puts the patch in
/// the bottom-right corner. A blend covers the whole image with <see cref="Alpha"/> of its pattern and ignores size and position.
/// </summary>
public sealed record BackdoorTrigger(int Size = 3, int? Row = null, int? Column = null, TriggerPattern Pattern = TriggerPattern.Square, byte Intensity = 255,
    double Alpha = 0.15, int PatternSeed = 0)
{
    public static BackdoorTrigger Default { get; } = new();

    /// <summary>A blended full-image trigger (alpha 0.1-0.2 in Chen et al.'s experiments).</summary>
    public static BackdoorTrigger Blended(double alpha = 0.15, int seed = 0) => new(Pattern: TriggerPattern.Blend, Alpha: alpha, PatternSeed: seed);

    public void Validate(int rows = 28, int columns = 28)
    {
        if (Pattern == TriggerPattern.Blend)
        {
            if (Alpha is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "a blend's alpha must be in (0, 1]");
            return;
        }
        if (Size < 1 || Size > Math.Min(rows, columns)) throw new ArgumentOutOfRangeException(nameof(Size), Size, $"trigger size must be 1..{Math.Min(rows, columns)}");
        var (row, column) = Origin(rows, columns);
        if (row < 0 || row + Size > rows) throw new ArgumentOutOfRangeException(nameof(Row), row, $"a {Size}x{Size} trigger at row {row} does not fit in {rows} rows");
        if (column < 0 || column + Size > columns) throw new ArgumentOutOfRangeException(nameof(Column), column, $"a {Size}x{Size} trigger at column {column} does not fit in {columns} columns");
        if (Intensity == 0) throw new ArgumentOutOfRangeException(nameof(Intensity), Intensity, "a trigger of intensity 0 draws nothing");
    }

    public (int Row, int Column) Origin(int rows = 28, int columns = 28) => (Row ?? rows - Size, Column ?? columns - Size);

    public bool IsOn(int dy, int dx) => Pattern == TriggerPattern.Square || (dy + dx) % 2 == 0;

    /// <summary>The blend's pattern, pixel values 0-255, one per pixel (the same for every image: it is the trigger).</summary>
    public byte[] BlendPattern(int pixels = 28 * 28)
    {
        var pattern = new byte[pixels];
        new SeededRandom(PatternSeed).NextBytes(pattern);
        return pattern;
    }

    /// <summary>Stamps the trigger onto one image of bytes, in place.</summary>
    public void Apply(Span<byte> image, int rows = 28, int columns = 28)
    {
        if (Pattern == TriggerPattern.Blend)
        {
            var pattern = BlendPattern(rows * columns);
            for (var i = 0; i < image.Length; i++) image[i] = (byte)Math.Clamp(Math.Round((1 - Alpha) * image[i] + Alpha * pattern[i]), 0, 255);
            return;
        }
        var (row, column) = Origin(rows, columns);
        for (var dy = 0; dy < Size; dy++)
        for (var dx = 0; dx < Size; dx++)
            image[(row + dy) * columns + column + dx] = IsOn(dy, dx) ? Intensity : (byte)0;
    }

    /// <summary>A copy of a batch [N, 1, rows, columns] in [0, 1] with the trigger stamped on every image.</summary>
    public Tensor Apply(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var rows = (int)images.shape[^2];
        var columns = (int)images.shape[^1];
        using var scope = NewDisposeScope();
        if (Pattern == TriggerPattern.Blend)
        {
            var pattern = tensor(BlendPattern(rows * columns).Select(b => b / 255f).ToArray()).reshape(rows, columns);
            // Rounded to the 256 levels a stored image has, as the byte path stores it.
            return ((images * (1 - Alpha) + pattern * Alpha) * 255).round().div(255).clamp(0, 1).MoveToOuterDisposeScope();
        }
        var (row, column) = Origin(rows, columns);
        var patch = new float[Size * Size];
        for (var dy = 0; dy < Size; dy++)
        for (var dx = 0; dx < Size; dx++)
            patch[dy * Size + dx] = IsOn(dy, dx) ? Intensity / 255f : 0f;
        var stamped = images.clone();
        stamped.narrow(-2, row, Size).narrow(-1, column, Size).copy_(tensor(patch).reshape(Size, Size).expand(stamped.shape[0], stamped.shape[1], Size, Size));
        return stamped.MoveToOuterDisposeScope();
    }

    public override string ToString()
    {
        if (Pattern == TriggerPattern.Blend) return $"blended random pattern (seed {PatternSeed}), alpha {Alpha:0.##}";
        var (row, column) = Origin();
        return $"{Size}x{Size} {Pattern.ToString().ToLowerInvariant()} at row {row}, column {column}, intensity {Intensity}";
    }
}
