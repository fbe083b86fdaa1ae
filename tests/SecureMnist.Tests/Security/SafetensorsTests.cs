using System.Buffers.Binary;
using System.Text;
using SecureMnist.Security;

namespace SecureMnist.Tests.Security;

public sealed class SafetensorsTests
{
    private static byte[] FileWithHeader(string header, byte[] data)
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + headerBytes.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)headerBytes.Length);
        headerBytes.CopyTo(file, 8);
        data.CopyTo(file, 8 + headerBytes.Length);
        return file;
    }

    [Fact]
    public void A_file_built_by_hand_from_the_spec_loads()
    {
        // The format's own example: one I32 tensor "test" of shape [2, 2] plus string metadata.
        var data = new byte[16];
        for (var i = 0; i < 4; i++) BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4 * i), i + 1);
        var file = Safetensors.Parse(FileWithHeader("""{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"foo":"bar"}}""", data));

        var entry = Assert.Single(file.Entries);
        Assert.Equal(("test", "I32"), (entry.Name, entry.DType));
        Assert.Equal([2L, 2L], entry.Shape);
        Assert.Equal("bar", file.Metadata["foo"]);
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(file.Bytes(entry)[8..]));
    }

    [Fact]
    public void Round_trip_is_bit_exact_including_special_floats()
    {
        float[] values = [0f, -0f, 1.5f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, BitConverter.Int32BitsToSingle(0x7FC00123)];
        var tensors = new[]
        {
            SafetensorsTensor.Float32("b.weight", [2, 4], values),
            SafetensorsTensor.Float32("a.bias", [1], [42f]),
        };
        var bytes = Safetensors.Serialize(tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var parsed = Safetensors.Parse(bytes);

        Assert.Equal(0, (BinaryPrimitives.ReadInt64LittleEndian(bytes) + 8) % 8);
        var weight = parsed["b.weight"];
        Assert.Equal(tensors[0].Data, parsed.Bytes(weight).ToArray());
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), parsed.ReadFloat32(weight).Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(bytes, Safetensors.Serialize(parsed.Entries.Select(e => new SafetensorsTensor(e.Name, e.DType, e.Shape, parsed.Bytes(e).ToArray())), parsed.Metadata));
    }

    public static TheoryData<string, byte[], string> MalformedFiles() => new()
    {
        { "too short", [1, 2, 3], "too short for the 8-byte header length" },
        { "header length past end", [.. BitConverter.GetBytes(1000L), .. "{}"u8.ToArray()], "runs past the end" },
        { "header over cap", [.. BitConverter.GetBytes(200_000_000L), .. new byte[8]], "exceeds the 100000000 byte limit" },
        { "not json", FileWithHeader("{not json", []), "not valid JSON" },
        { "not an object", FileWithHeader("[1,2]", []), "does not start with '{'" },
        { "unknown dtype", FileWithHeader("""{"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}""", [0]), "unknown dtype 'Q7'" },
        { "offsets past data", FileWithHeader("""{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", new byte[4]), "tensors need 8 data bytes but the file holds 4" },
        { "shape mismatch", FileWithHeader("""{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]), "needs 12 bytes but data_offsets span 8" },
        { "overlap", FileWithHeader("""{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}""", new byte[6]), "overlaps" },
        { "gap", FileWithHeader("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}""", new byte[6]), "gap in the data buffer" },
        { "trailing bytes", FileWithHeader("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}""", new byte[5]), "3 trailing bytes" },
        { "negative shape", FileWithHeader("""{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}""", new byte[2]), "not a non-negative integer" },
        { "duplicate tensor", FileWithHeader("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", new byte[2]), "not valid JSON" },
        { "unknown field", FileWithHeader("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}""", new byte[1]), "unknown field 'x'" },
        { "metadata not strings", FileWithHeader("""{"__metadata__":{"a":1}}""", []), "is not a string" },
        { "overflowing shape", FileWithHeader("""{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", new byte[8]), "overflows" },
    };

    [Theory]
    [MemberData(nameof(MalformedFiles))]
    public void Malformed_files_are_refused(string name, byte[] file, string expected)
    {
        var error = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(file));
        Assert.True(error.Message.Contains(expected, StringComparison.Ordinal), $"{name}: {error.Message}");
    }
}
