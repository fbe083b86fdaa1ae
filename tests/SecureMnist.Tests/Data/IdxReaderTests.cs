using System.Buffers.Binary;
using System.IO.Compression;
using SecureMnist.Data;

namespace SecureMnist.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static byte[] Header(int count, int rows, int columns)
    {
        var header = new byte[16];
        header[2] = 0x08;
        header[3] = 3;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), columns);
        return header;
    }

    private static byte[] Images(int count, int rows = 28, int columns = 28, byte type = 0x08, byte rank = 3)
    {
        var header = new byte[4 + 4 * rank];
        header[2] = type;
        header[3] = rank;
        int[] dimensions = [count, rows, columns];
        for (var i = 0; i < rank; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dimensions[Math.Min(i, 2)]);
        return [.. header, .. new byte[count * rows * columns]];
    }

    private static byte[] Labels(params byte[] labels)
    {
        var header = new byte[8];
        header[2] = 0x08;
        header[3] = 1;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), labels.Length);
        return [.. header, .. labels];
    }

    private string Write(string name, byte[] content)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    private string Gzip(string name, byte[] content)
    {
        var path = Path.Combine(directory, name);
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        gzip.Write(content);
        return path;
    }

    [Fact]
    public void Reads_well_formed_plain_and_gzip_files()
    {
        var content = Images(3);
        content[^1] = 255;
        var plain = IdxReader.ReadImages(Write("a-idx3-ubyte", content));
        var gzip = IdxReader.ReadImages(Gzip("a-idx3-ubyte.gz", content));
        Assert.Equal((3, 28, 28), (plain.Count, plain.Rows, plain.Columns));
        Assert.Equal(plain.Pixels, gzip.Pixels);
        Assert.Equal(255, plain.Pixels[^1]);
        Assert.Equal(new byte[] { 1, 9, 0 }, IdxReader.ReadLabels(Write("l", Labels(1, 9, 0))));
    }

    public static TheoryData<string, byte[], string> MalformedImageFiles()
    {
        var bigHeader = Images(1);
        BinaryPrimitives.WriteUInt32BigEndian(bigHeader.AsSpan(4), 1u << 31);
        var zeroDimension = Images(1);
        BinaryPrimitives.WriteInt32BigEndian(zeroDimension.AsSpan(8), 0);
        var hugeSide = Images(1);
        BinaryPrimitives.WriteInt32BigEndian(hugeSide.AsSpan(8), 5000);
        var tooManyBytes = Header(9000, 1024, 1024);
        var badMagic = Images(1);
        badMagic[0] = 1;
        return new TheoryData<string, byte[], string>
        {
            { "empty", [], "file is empty" },
            { "short magic", [0, 0, 8], "too short for the 4-byte magic number" },
            { "bad magic", badMagic, "bad magic number" },
            { "float elements", Images(1, type: 0x0D), "element type 0x0D (float) is not supported" },
            { "wrong rank", Images(1, rank: 2), "2 dimensions, expected 3" },
            { "truncated header", Images(1)[..10], "header truncated" },
            { "2^31 images", bigHeader, "claims 2147483648 entries" },
            { "zero dimension", zeroDimension, "dimension 1 is zero" },
            { "huge side", hugeSide, "exceeds the 1024x1024 limit" },
            { "payload over limit", tooManyBytes, "more than the 1073741824 byte limit" },
            { "truncated data", Images(2)[..^1], "(truncated)" },
            { "trailing data", [.. Images(2), 7], "(trailing data)" },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedImageFiles))]
    public void Malformed_image_files_are_refused_with_a_precise_message(string name, byte[] content, string expected)
    {
        var path = Write(name.Replace(' ', '-'), content);
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void All_malformed_file_messages_are_distinct()
    {
        var messages = MalformedImageFiles().Select(row => (string)row[2]).ToList();
        Assert.True(messages.Count >= 10);
        Assert.Equal(messages.Count, messages.Distinct().Count());
    }

    [Fact]
    public void A_header_claiming_two_billion_images_fails_fast_without_allocating()
    {
        var content = Images(1);
        BinaryPrimitives.WriteUInt32BigEndian(content.AsSpan(4), 1u << 31);
        var path = Write("huge", content);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<IdxFormatException>(() => IdxReader.ReadImages(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "the reader allocated more than 1 MiB for a 2^31-image header");
    }

    [Fact]
    public void Labels_outside_0_to_9_are_refused()
    {
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadLabels(Write("l", Labels(3, 12))));
        Assert.Contains("label 12 at index 1 is outside 0-9", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Image_and_label_counts_must_agree()
    {
        var images = Write("i", Images(3));
        var labels = Write("l", Labels(1, 2));
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadPair(images, labels));
        Assert.Contains("holds 3 images but", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Images_of_another_size_are_refused_for_mnist()
    {
        var images = Write("i", Images(1, 32, 32));
        var labels = Write("l", Labels(1));
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadPair(images, labels));
        Assert.Contains("expected 28x28 images, found 32x32", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gz_file_that_is_not_gzip_is_refused()
    {
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadImages(Write("x.gz", Images(1))));
        Assert.Contains("not a gzip file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_corrupt_gzip_stream_is_refused()
    {
        var path = Gzip("c.gz", Images(2));
        var bytes = File.ReadAllBytes(path);
        for (var i = 12; i < bytes.Length - 8; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<IdxFormatException>(() => IdxReader.ReadImages(path));
    }

    [Fact]
    public void A_gzip_file_that_decompresses_past_its_header_is_refused()
    {
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadImages(Gzip("bomb.gz", [.. Images(1), .. new byte[1 << 20]])));
        Assert.Contains("trailing data", error.Message, StringComparison.Ordinal);
    }
}
