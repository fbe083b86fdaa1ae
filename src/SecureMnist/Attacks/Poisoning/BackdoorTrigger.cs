using static TorchSharp.torch;

namespace SecureMnist.Attacks.Poisoning;

public enum TriggerPattern
{
    /// <summary>A solid square (the seeds' 3x3 white square).</summary>
    Square,
    /// <summary>Alternating on/off pixels, a pattern no digit stroke contains.</summary>
    Checkerboard,
}

/// <summary>
/// A patch trigger stamped onto images. Row and Column are the patch's top-left pixel; null puts
/// the patch in the bottom-right corner.
/// </summary>
public sealed record BackdoorTrigger(int Size = 3, int? Row = null, int? Column = null, TriggerPattern Pattern = TriggerPattern.Square, byte Intensity = 255)
{
    public static BackdoorTrigger Default { get; } = new();

    public void Validate(int rows = 28, int columns = 28)
    {
        if (Size < 1 || Size > Math.Min(rows, columns)) throw new ArgumentOutOfRangeException(nameof(Size), Size, $"trigger size must be 1..{Math.Min(rows, columns)}");
        var (row, column) = Origin(rows, columns);
        if (row < 0 || row + Size > rows) throw new ArgumentOutOfRangeException(nameof(Row), row, $"a {Size}x{Size} trigger at row {row} does not fit in {rows} rows");
        if (column < 0 || column + Size > columns) throw new ArgumentOutOfRangeException(nameof(Column), column, $"a {Size}x{Size} trigger at column {column} does not fit in {columns} columns");
        if (Intensity == 0) throw new ArgumentOutOfRangeException(nameof(Intensity), Intensity, "a trigger of intensity 0 draws nothing");
    }

    public (int Row, int Column) Origin(int rows = 28, int columns = 28) => (Row ?? rows - Size, Column ?? columns - Size);

    public bool IsOn(int dy, int dx) => Pattern == TriggerPattern.Square || (dy + dx) % 2 == 0;

    /// <summary>Stamps the trigger onto one image of bytes, in place.</summary>
    public void Apply(Span<byte> image, int rows = 28, int columns = 28)
    {
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
        var (row, column) = Origin(rows, columns);
        var patch = new float[Size * Size];
        for (var dy = 0; dy < Size; dy++)
        for (var dx = 0; dx < Size; dx++)
            patch[dy * Size + dx] = IsOn(dy, dx) ? Intensity / 255f : 0f;
        using var scope = NewDisposeScope();
        var stamped = images.clone();
        stamped.narrow(-2, row, Size).narrow(-1, column, Size).copy_(tensor(patch).reshape(Size, Size).expand(stamped.shape[0], stamped.shape[1], Size, Size));
        return stamped.MoveToOuterDisposeScope();
    }

    public override string ToString()
    {
        var (row, column) = Origin();
        return $"{Size}x{Size} {Pattern.ToString().ToLowerInvariant()} at row {row}, column {column}, intensity {Intensity}";
    }
}
