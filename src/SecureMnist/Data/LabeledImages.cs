using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Data;

/// <summary>Grey-scale images with their labels, kept as bytes (one per pixel) until a batch needs tensors.</summary>
public sealed class LabeledImages
{
    public LabeledImages(byte[] pixels, byte[] labels, int rows = 28, int columns = 28)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (pixels.Length != checked(labels.Length * rows * columns))
            throw new ArgumentException($"{pixels.Length} pixel bytes do not hold {labels.Length} images of {rows}x{columns}");
        Pixels = pixels;
        Labels = labels;
        Rows = rows;
        Columns = columns;
    }

    public byte[] Pixels { get; }
    public byte[] Labels { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Count => Labels.Length;
    public int PixelsPerImage => Rows * Columns;

    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);

    public LabeledImages Select(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var pixels = new byte[indices.Count * PixelsPerImage];
        var labels = new byte[indices.Count];
        for (var i = 0; i < indices.Count; i++)
        {
            Image(indices[i]).CopyTo(pixels.AsSpan(i * PixelsPerImage));
            labels[i] = Labels[indices[i]];
        }
        return new LabeledImages(pixels, labels, Rows, Columns);
    }

    /// <summary>The images of <paramref name="first"/> followed by those of <paramref name="second"/> (same image size).</summary>
    public static LabeledImages Concat(LabeledImages first, LabeledImages second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Rows != second.Rows || first.Columns != second.Columns) throw new ArgumentException("images of different sizes cannot be joined");
        return new LabeledImages([.. first.Pixels, .. second.Pixels], [.. first.Labels, .. second.Labels], first.Rows, first.Columns);
    }

    public LabeledImages Take(int count) => count >= Count ? this : Select(Enumerable.Range(0, count).ToArray());

    /// <summary>Splits off the last <paramref name="validationCount"/> images of a seeded shuffle as a validation set.</summary>
    public (LabeledImages Train, LabeledImages Validation) Split(int validationCount, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(validationCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(validationCount, Count);
        var order = Enumerable.Range(0, Count).ToArray();
        new SeededRandom(seed).Shuffle(order);
        var train = order[..(Count - validationCount)];
        var validation = order[(Count - validationCount)..];
        Array.Sort(train);
        Array.Sort(validation);
        return (Select(train), Select(validation));
    }

    /// <summary>All images as a float tensor [N, 1, rows, columns] in [0, 1].</summary>
    public Tensor ImagesTensor()
    {
        using var scope = NewDisposeScope();
        var bytes = tensor(Pixels, ScalarType.Byte).reshape(Count, 1, Rows, Columns);
        return bytes.to(ScalarType.Float32).div_(255f).MoveToOuterDisposeScope();
    }

    public Tensor LabelsTensor() => tensor(Labels.Select(l => (long)l).ToArray(), ScalarType.Int64);

    public int[] ClassCounts(int classCount = 10)
    {
        var counts = new int[classCount];
        foreach (var label in Labels) counts[label]++;
        return counts;
    }
}
