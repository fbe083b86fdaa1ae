using System.Buffers.Binary;
using SecureMnist.IO;

namespace SecureMnist.Data;

/// <summary>
/// Writes IDX files: unsigned-byte images and labels (as MNIST ships them) and float32 images
/// (element type 0x0D, big-endian values), which keep adversarial examples exact.
/// </summary>
public static class IdxWriter
{
    public const byte Float32Type = 0x0D;

    public static void WriteLabels(string path, ReadOnlySpan<byte> labels)
    {
        var bytes = Header(IdxReader.UnsignedByteType, [labels.Length], labels.Length);
        labels.CopyTo(bytes.AsSpan(8));
        AtomicFile.WriteAllBytes(path, bytes);
    }

    public static void WriteImages(string path, ReadOnlySpan<byte> pixels, int count, int rows, int columns)
    {
        var bytes = Header(IdxReader.UnsignedByteType, [count, rows, columns], pixels.Length);
        pixels.CopyTo(bytes.AsSpan(16));
        AtomicFile.WriteAllBytes(path, bytes);
    }

    public static void WriteFloatImages(string path, ReadOnlySpan<float> pixels, int count, int rows, int columns)
    {
        if (pixels.Length != checked(count * rows * columns)) throw new ArgumentException("pixel count does not match the dimensions");
        var bytes = Header(Float32Type, [count, rows, columns], pixels.Length * 4);
        for (var i = 0; i < pixels.Length; i++) BinaryPrimitives.WriteSingleBigEndian(bytes.AsSpan(16 + 4 * i), pixels[i]);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    private static byte[] Header(byte type, int[] dimensions, int payload)
    {
        var bytes = new byte[4 + 4 * dimensions.Length + payload];
        bytes[2] = type;
        bytes[3] = (byte)dimensions.Length;
        for (var i = 0; i < dimensions.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dimensions[i]);
        return bytes;
    }
}
