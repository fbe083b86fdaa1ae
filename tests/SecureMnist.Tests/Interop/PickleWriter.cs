using System.Text;

namespace SecureMnist.Tests.Interop;

/// <summary>Writes protocol-2 pickle opcodes by hand.</summary>
internal sealed class PickleWriter
{
    private readonly MemoryStream bytes = new();

    public PickleWriter() => bytes.Write([0x80, 0x02]);

    public PickleWriter Raw(string text) => Raw(Encoding.Latin1.GetBytes(text));

    public PickleWriter Raw(byte[] data)
    {
        bytes.Write(data);
        return this;
    }

    public PickleWriter Op(byte opcode) => Raw([opcode]);

    public PickleWriter Mark() => Raw("(");

    public PickleWriter Stop() => Raw(".");

    public PickleWriter Dict() => Raw("}");

    public PickleWriter Global(string module, string name) => Raw($"c{module}\n{name}\n");

    public PickleWriter Unicode(string text)
    {
        var data = Encoding.UTF8.GetBytes(text);
        return Raw("X").Raw(BitConverter.GetBytes(data.Length)).Raw(data);
    }

    public PickleWriter Int(long value) => Raw("J").Raw(BitConverter.GetBytes(checked((int)value)));

    public PickleWriter Tuple(params long[] values)
    {
        Mark();
        foreach (var value in values) Int(value);
        return Raw("t");
    }

    /// <summary>_rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict()).</summary>
    public PickleWriter Tensor(string key, long elements, long[] size, long[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Unicode("storage").Global("torch", "FloatStorage").Unicode(key).Unicode("cpu").Int(elements).Raw("t").Raw("Q");
        Int(0).Tuple(size).Tuple(stride).Op(0x89).Global("collections", "OrderedDict").Raw(")").Raw("R");
        return Raw("t").Raw("R");
    }

    public byte[] ToArray() => bytes.ToArray();
}
