using System.Text;

namespace SecureMnist.Tests.Interop;

/// <summary>ONNX messages built field by field in protobuf's wire format, for files no exporter would write.</summary>
internal static class OnnxBytes
{
    public static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7f);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
        return [.. bytes];
    }

    public static byte[] Int(int field, ulong value) => [.. Varint((ulong)field << 3), .. Varint(value)];
    public static byte[] Field(int field, byte[] body) => [.. Varint(((ulong)field << 3) | 2), .. Varint((ulong)body.Length), .. body];
    public static byte[] Str(int field, string value) => Field(field, Encoding.UTF8.GetBytes(value));
    public static byte[] Message(params byte[][] fields) => [.. fields.SelectMany(f => f)];

    /// <summary>A ModelProto: ir_version 8, a producer, one graph of the given nodes and initializers, opset 13.</summary>
    public static byte[] Model(byte[][] nodes, byte[][]? initializers = null) => Message(
        Int(1, 8), Str(2, "hand"), Field(7, Message([.. nodes.Select(n => Field(1, n)), .. (initializers ?? []).Select(t => Field(5, t))])),
        Field(8, Message(Str(1, ""), Int(2, 13))));

    public static byte[] Node(string opType, string domain = "") => Message(Str(4, opType), domain.Length > 0 ? Str(7, domain) : []);

    public static byte[] ExternalTensor(string location) => Message(Int(1, 3), Int(2, 1), Str(8, "w"),
        Field(13, Message(Str(1, "location"), Str(2, location))), Int(14, 1));
}
