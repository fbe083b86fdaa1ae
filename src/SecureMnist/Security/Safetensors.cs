using System.Buffers.Binary;
using System.Text.Json;

namespace SecureMnist.Security;

/// <summary>One tensor of a safetensors file: its dtype, shape and byte range in the data buffer.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (product, size) => checked(product * size));
}

/// <summary>A parsed safetensors file: entries, metadata, and the raw data buffer.</summary>
public sealed class SafetensorsFile
{
    internal SafetensorsFile(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata, ReadOnlyMemory<byte> data)
    {
        Entries = entries;
        Metadata = metadata;
        Data = data;
    }

    public IReadOnlyList<SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public ReadOnlyMemory<byte> Data { get; }

    public SafetensorsEntry this[string name] =>
        Entries.FirstOrDefault(e => e.Name == name) ?? throw new KeyNotFoundException($"no tensor named '{name}'");

    public ReadOnlySpan<byte> Bytes(SafetensorsEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return Data.Span[(int)entry.Begin..(int)entry.End];
    }

    public float[] ReadFloat32(SafetensorsEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.DType != "F32") throw new SafetensorsException($"tensor '{entry.Name}' is {entry.DType}, expected F32");
        var values = new float[entry.ElementCount];
        var bytes = Bytes(entry);
        for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
        return values;
    }
}

/// <summary>A safetensors file that breaks the format; nothing from it is used.</summary>
public sealed class SafetensorsException(string message) : Exception(message);

/// <summary>A tensor to write: name, dtype, shape, and its little-endian bytes.</summary>
public sealed record SafetensorsTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public static SafetensorsTensor Float32(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return new SafetensorsTensor(name, "F32", shape, data);
    }
}

/// <summary>
/// Reader and writer for the safetensors format (8-byte little-endian header length, a JSON header
/// of dtype/shape/data_offsets plus optional string-to-string __metadata__, then raw little-endian
/// data). The reader is strict: every check of the reference implementation, and a header cap.
/// </summary>
public static class Safetensors
{
    public const long MaxHeaderBytes = 100_000_000;
    public const string MetadataKey = "__metadata__";

    private static readonly Dictionary<string, int> DTypeSizes = new()
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    public static byte[] Serialize(IEnumerable<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        using var header = new MemoryStream();
        using (var writer = new Utf8JsonWriter(header))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(m => m.Key, StringComparer.Ordinal)) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var tensor in ordered)
            {
                if (!DTypeSizes.TryGetValue(tensor.DType, out var size)) throw new ArgumentException($"unknown dtype {tensor.DType}");
                var count = tensor.Shape.Aggregate(1L, (p, s) => checked(p * s));
                if (count * size != tensor.Data.Length)
                    throw new ArgumentException($"tensor {tensor.Name}: {tensor.Data.Length} bytes do not match shape [{string.Join(",", tensor.Shape)}] of {tensor.DType}");
                writer.WriteStartObject(tensor.Name);
                writer.WriteString("dtype", tensor.DType);
                writer.WriteStartArray("shape");
                foreach (var dimension in tensor.Shape) writer.WriteNumberValue(dimension);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + tensor.Data.Length);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += tensor.Data.Length;
            }
            writer.WriteEndObject();
        }
        // Pad the header with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
        var headerLength = (header.Length + 7) / 8 * 8;
        var output = new byte[8 + headerLength + ordered.Sum(t => (long)t.Data.Length)];
        BinaryPrimitives.WriteUInt64LittleEndian(output, (ulong)headerLength);
        header.GetBuffer().AsSpan(0, (int)header.Length).CopyTo(output.AsSpan(8));
        output.AsSpan(8 + (int)header.Length, (int)(headerLength - header.Length)).Fill((byte)' ');
        var position = 8 + (int)headerLength;
        foreach (var tensor in ordered)
        {
            tensor.Data.CopyTo(output, position);
            position += tensor.Data.Length;
        }
        return output;
    }

    public static SafetensorsFile Parse(ReadOnlyMemory<byte> file)
    {
        var span = file.Span;
        if (span.Length < 8) throw new SafetensorsException($"file is {span.Length} bytes, too short for the 8-byte header length");
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(span);
        if (headerLength > MaxHeaderBytes) throw new SafetensorsException($"header length {headerLength} exceeds the {MaxHeaderBytes} byte limit");
        if ((long)headerLength > span.Length - 8) throw new SafetensorsException($"header length {headerLength} runs past the end of the {span.Length} byte file");
        var headerBytes = span.Slice(8, (int)headerLength);
        if (headerBytes.Length == 0 || headerBytes[0] != (byte)'{') throw new SafetensorsException("header does not start with '{'");
        // System.Text.Json leaves invalid UTF-8 inside names and strings to whoever reads them; refuse it up front.
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw new SafetensorsException("header is not valid UTF-8");
        var data = file[(8 + (int)headerLength)..];

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(file.Slice(8, (int)headerLength), new JsonDocumentOptions { MaxDepth = 4, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new SafetensorsException($"header is not valid JSON: {e.Message}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new SafetensorsException("header is not a JSON object");
            var metadata = new Dictionary<string, string>();
            var entries = new List<SafetensorsEntry>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw new SafetensorsException("__metadata__ is not an object");
                    foreach (var item in property.Value.EnumerateObject())
                    {
                        if (item.Value.ValueKind != JsonValueKind.String) throw new SafetensorsException($"__metadata__ value '{item.Name}' is not a string");
                        metadata[item.Name] = item.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(property));
            }
            CheckLayout(entries, data.Length);
            return new SafetensorsFile(entries, metadata, data);
        }
    }

    private static SafetensorsEntry ParseEntry(JsonProperty property)
    {
        var name = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object) throw new SafetensorsException($"tensor '{name}': entry is not an object");
        string? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype":
                    dtype = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : throw new SafetensorsException($"tensor '{name}': dtype is not a string");
                    break;
                case "shape":
                    shape = ReadIntegers(field.Value, name, "shape");
                    break;
                case "data_offsets":
                    offsets = ReadIntegers(field.Value, name, "data_offsets");
                    break;
                default:
                    throw new SafetensorsException($"tensor '{name}': unknown field '{field.Name}'");
            }
        }
        if (dtype is null || shape is null || offsets is null) throw new SafetensorsException($"tensor '{name}': dtype, shape and data_offsets are all required");
        if (!DTypeSizes.TryGetValue(dtype, out var size)) throw new SafetensorsException($"tensor '{name}': unknown dtype '{dtype}'");
        if (offsets.Length != 2) throw new SafetensorsException($"tensor '{name}': data_offsets must hold exactly two numbers");
        if (offsets[1] < offsets[0]) throw new SafetensorsException($"tensor '{name}': data_offsets end {offsets[1]} is before begin {offsets[0]}");
        var entry = new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
        long count;
        try
        {
            count = entry.ElementCount;
            if (checked(count * size) != entry.End - entry.Begin)
                throw new SafetensorsException($"tensor '{name}': shape [{string.Join(",", shape)}] of {dtype} needs {count * size} bytes but data_offsets span {entry.End - entry.Begin}");
        }
        catch (OverflowException)
        {
            throw new SafetensorsException($"tensor '{name}': shape [{string.Join(",", shape)}] overflows");
        }
        return entry;
    }

    private static long[] ReadIntegers(JsonElement element, string name, string field)
    {
        if (element.ValueKind != JsonValueKind.Array) throw new SafetensorsException($"tensor '{name}': {field} is not an array");
        var values = new List<long>();
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var number) || number < 0)
                throw new SafetensorsException($"tensor '{name}': {field} holds '{item.GetRawText()}', not a non-negative integer");
            values.Add(number);
            if (values.Count > 8) throw new SafetensorsException($"tensor '{name}': {field} has more than 8 entries");
        }
        return values.ToArray();
    }

    // The data buffer must be covered exactly: sorted by offset, each tensor starts where the previous ended.
    private static void CheckLayout(List<SafetensorsEntry> entries, int dataLength)
    {
        long expected = 0;
        foreach (var entry in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (entry.Begin < expected) throw new SafetensorsException($"tensor '{entry.Name}' overlaps the previous tensor (begins at {entry.Begin}, previous ends at {expected})");
            if (entry.Begin > expected) throw new SafetensorsException($"gap in the data buffer before tensor '{entry.Name}' (bytes {expected}-{entry.Begin} unused)");
            expected = entry.End;
        }
        if (expected != dataLength)
            throw new SafetensorsException(expected < dataLength
                ? $"data buffer has {dataLength - expected} trailing bytes no tensor uses"
                : $"tensors need {expected} data bytes but the file holds {dataLength}");
    }
}
