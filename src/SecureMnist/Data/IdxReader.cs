using System.Buffers.Binary;
using System.IO.Compression;

namespace SecureMnist.Data;

/// <summary>Images from an IDX3 file: <see cref="Pixels"/> holds Count x Rows x Columns bytes, row-major.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels);

/// <summary>
/// Strict reader for the IDX format of the MNIST files (plain or gzip). Every header field is
/// checked before it is used, and nothing is allocated until the size is known to be sane.
/// </summary>
public static class IdxReader
{
    public const byte UnsignedByteType = 0x08;
    /// <summary>Largest item count accepted; MNIST-style sets hold at most a few hundred thousand.</summary>
    public const int MaxItems = 10_000_000;
    /// <summary>Largest image side accepted.</summary>
    public const int MaxSide = 1024;
    /// <summary>Largest payload accepted (bytes after the header).</summary>
    public const long MaxPayloadBytes = 1L << 30;

    private static readonly Dictionary<byte, string> ElementTypeNames = new()
    {
        [0x08] = "unsigned byte", [0x09] = "signed byte", [0x0B] = "short",
        [0x0C] = "int", [0x0D] = "float", [0x0E] = "double",
    };

    public static IdxImages ReadImages(string path)
    {
        using var source = Open(path);
        return ReadImages(source, path);
    }

    /// <summary>Reads images from an IDX stream (already decompressed; see <see cref="Decompressed"/>); <paramref name="path"/> names it in errors.</summary>
    public static IdxImages ReadImages(Stream source, string path)
    {
        ArgumentNullException.ThrowIfNull(source);
        var (_, dimensions) = ReadHeader(source, path, expectedRank: 3);
        var (count, rows, columns) = CheckImageDimensions(path, dimensions, bytesPerPixel: 1);
        var pixels = ReadPayload(source, path, count * rows * columns);
        return new IdxImages(count, rows, columns, pixels);
    }

    /// <summary>
    /// Reads images as floats in [0, 1]: unsigned-byte files are scaled by 1/255, float32 files (type 0x0D,
    /// as adversarial examples are saved) are taken as they are and must hold finite values in [0, 1].
    /// </summary>
    public static (int Count, int Rows, int Columns, float[] Pixels) ReadImagesAsFloat(string path)
    {
        using var source = Open(path);
        return ReadImagesAsFloat(source, path);
    }

    public static (int Count, int Rows, int Columns, float[] Pixels) ReadImagesAsFloat(Stream source, string path)
    {
        ArgumentNullException.ThrowIfNull(source);
        var (type, dimensions) = ReadHeader(source, path, expectedRank: 3, IdxWriter.Float32Type);
        var bytesPerPixel = type == IdxWriter.Float32Type ? 4 : 1;
        var (count, rows, columns) = CheckImageDimensions(path, dimensions, bytesPerPixel);
        var payload = ReadPayload(source, path, count * rows * columns * bytesPerPixel);
        var pixels = new float[count * rows * columns];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = bytesPerPixel == 1 ? payload[i] / 255f : BinaryPrimitives.ReadSingleBigEndian(payload.AsSpan(4 * i));
            if (!(pixels[i] >= 0 && pixels[i] <= 1))
                throw new IdxFormatException($"{path}: pixel {i % (rows * columns)} of image {i / (rows * columns)} is {pixels[i]}, outside [0, 1]");
        }
        return (count, rows, columns, pixels);
    }

    private static (int Count, int Rows, int Columns) CheckImageDimensions(string path, int[] dimensions, int bytesPerPixel)
    {
        var (count, rows, columns) = (dimensions[0], dimensions[1], dimensions[2]);
        if (rows > MaxSide || columns > MaxSide)
            throw new IdxFormatException($"{path}: image size {rows}x{columns} exceeds the {MaxSide}x{MaxSide} limit");
        var payload = (long)count * rows * columns * bytesPerPixel;
        if (payload > MaxPayloadBytes)
            throw new IdxFormatException($"{path}: header claims {count} images of {rows}x{columns} ({payload} bytes), more than the {MaxPayloadBytes} byte limit");
        return (count, rows, columns);
    }

    public static byte[] ReadLabels(string path, int classCount = 10)
    {
        using var source = Open(path);
        return ReadLabels(source, path, classCount);
    }

    public static byte[] ReadLabels(Stream source, string path, int classCount = 10)
    {
        ArgumentNullException.ThrowIfNull(source);
        var (_, dimensions) = ReadHeader(source, path, expectedRank: 1);
        var labels = ReadPayload(source, path, dimensions[0]);
        for (var index = 0; index < labels.Length; index++)
        {
            if (labels[index] >= classCount)
                throw new IdxFormatException($"{path}: label {labels[index]} at index {index} is outside 0-{classCount - 1}");
        }
        return labels;
    }

    /// <summary>Reads an image file and its label file and checks that they describe the same items.</summary>
    public static (IdxImages Images, byte[] Labels) ReadPair(string imagesPath, string labelsPath, int rows = 28, int columns = 28)
    {
        var images = ReadImages(imagesPath);
        if (images.Rows != rows || images.Columns != columns)
            throw new IdxFormatException($"{imagesPath}: expected {rows}x{columns} images, found {images.Rows}x{images.Columns}");
        var labels = ReadLabels(labelsPath);
        if (labels.Length != images.Count)
            throw new IdxFormatException($"{imagesPath} holds {images.Count} images but {labelsPath} holds {labels.Length} labels");
        return (images, labels);
    }

    private static Stream Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        Stream file = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? Decompressed(file, path) : file;
    }

    /// <summary>A gzip stream over <paramref name="file"/> (which it then owns), after checking the gzip magic bytes.</summary>
    public static Stream Decompressed(Stream file, string path)
    {
        ArgumentNullException.ThrowIfNull(file);
        Span<byte> magic = stackalloc byte[2];
        if (file.ReadAtLeast(magic, 2, throwOnEndOfStream: false) < 2 || magic[0] != 0x1f || magic[1] != 0x8b)
        {
            file.Dispose();
            throw new IdxFormatException($"{path}: not a gzip file (the name ends in .gz but the gzip magic bytes 1f 8b are missing)");
        }
        file.Position = 0;
        return new GZipStream(file, CompressionMode.Decompress);
    }

    private static (byte Type, int[] Dimensions) ReadHeader(Stream source, string path, int expectedRank, byte? alsoAllowed = null)
    {
        Span<byte> magic = stackalloc byte[4];
        var read = ReadFully(source, path, magic);
        if (read == 0) throw new IdxFormatException($"{path}: file is empty");
        if (read < 4) throw new IdxFormatException($"{path}: file is {read} bytes, too short for the 4-byte magic number");
        if (magic[0] != 0 || magic[1] != 0)
            throw new IdxFormatException($"{path}: bad magic number {Convert.ToHexString(magic)}: an IDX file starts with two zero bytes");
        if (magic[2] != UnsignedByteType && magic[2] != alsoAllowed)
        {
            var name = ElementTypeNames.GetValueOrDefault(magic[2], "unknown");
            throw new IdxFormatException($"{path}: element type 0x{magic[2]:X2} ({name}) is not supported; MNIST files use 0x08 (unsigned byte){(alsoAllowed is null ? "" : $" and adversarial sets 0x{alsoAllowed:X2}")}");
        }
        if (magic[3] != expectedRank)
            throw new IdxFormatException($"{path}: {magic[3]} dimensions, expected {expectedRank} ({(expectedRank == 3 ? "images" : "labels")})");

        Span<byte> header = stackalloc byte[4 * expectedRank];
        if (ReadFully(source, path, header) < header.Length)
            throw new IdxFormatException($"{path}: header truncated: {expectedRank} dimension sizes need {header.Length} bytes after the magic number");
        var dimensions = new int[expectedRank];
        for (var axis = 0; axis < expectedRank; axis++)
        {
            var size = BinaryPrimitives.ReadUInt32BigEndian(header[(4 * axis)..]);
            if (size == 0) throw new IdxFormatException($"{path}: dimension {axis} is zero");
            if (size > MaxItems)
                throw new IdxFormatException($"{path}: dimension {axis} claims {size} entries, more than the {MaxItems} limit");
            dimensions[axis] = (int)size;
        }
        return (magic[2], dimensions);
    }

    private static byte[] ReadPayload(Stream source, string path, int length)
    {
        if (source.CanSeek)
        {
            var remaining = source.Length - source.Position;
            if (remaining != length)
                throw new IdxFormatException($"{path}: file length {source.Length} does not match the header, which implies {source.Position + length} bytes ({(remaining < length ? "truncated" : "trailing data")})");
        }
        // A gzip stream's length is unknown until it ends: grow the buffer as bytes arrive, so a small file that claims a
        // gigabyte allocates only what it really holds.
        var payload = new byte[source.CanSeek ? length : Math.Min(length, 1 << 20)];
        var read = 0;
        while (true)
        {
            read += ReadFully(source, path, payload.AsSpan(read));
            if (read < payload.Length || payload.Length == length) break;
            Array.Resize(ref payload, (int)Math.Min(length, 2L * payload.Length));
        }
        if (read < length)
            throw new IdxFormatException($"{path}: truncated: header implies {length} data bytes, only {read} present");
        Span<byte> probe = stackalloc byte[1];
        if (ReadFully(source, path, probe) != 0)
            throw new IdxFormatException($"{path}: trailing data after the {length} data bytes the header describes");
        return payload;
    }

    private static int ReadFully(Stream source, string path, Span<byte> buffer)
    {
        try
        {
            return source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException e)
        {
            throw new IdxFormatException($"{path}: corrupt gzip stream: {e.Message}");
        }
    }
}
