using System.Text;

namespace SecureMnist.Interop;

/// <summary>An ONNX file that cannot be read within the limits, with what is wrong and where.</summary>
public sealed class OnnxFormatException(string message) : Exception(message);

/// <summary>Bounds on what reading an ONNX file may cost, checked against what is really in it.</summary>
public sealed record OnnxLimits(long MaxFileBytes = 1L << 30, int MaxNodes = 100_000, int MaxInitializers = 100_000, int MaxDepth = 16,
    int MaxStringBytes = 64 << 10, long MaxTensorBytes = 1L << 30);

/// <summary>One initializer (a weight tensor): its name, element type, shape, bytes in the file, and where its data lives when not in the file.</summary>
public sealed record OnnxInitializer(string Name, int DataType, long[] Dims, long Bytes, string? ExternalLocation);

/// <summary>One operator the graph uses, by domain ("" is the standard one) and type, with how often.</summary>
public sealed record OnnxOperator(string Domain, string OpType, int Count);

/// <summary>What an ONNX file holds, read without running anything: versions, operator sets, operators, weights, and local functions.</summary>
public sealed record OnnxModelSummary(long IrVersion, string Producer, IReadOnlyList<(string Domain, long Version)> Opsets, IReadOnlyList<OnnxOperator> Operators,
    IReadOnlyList<OnnxInitializer> Initializers, IReadOnlyList<string> Functions, int Graphs)
{
    /// <summary>The operator domains ONNX Runtime implements itself; any other needs a custom-op library, native code loaded into the runtime.</summary>
    public static IReadOnlySet<string> StandardDomains { get; } = new HashSet<string>(StringComparer.Ordinal) { "", "ai.onnx", "ai.onnx.ml" };

    /// <summary>What makes the file unsafe to load as it is: custom-op domains, external data that escapes its folder.</summary>
    public IReadOnlyList<string> Problems() => Findings().Select(f => f.Message).ToList();

    /// <summary>Why the model is unsafe to load: a custom operator needs native code (critical); external data outside the folder is high.</summary>
    public IReadOnlyList<ScanFinding> Findings()
    {
        var findings = new List<ScanFinding>();
        var local = Functions.ToHashSet(StringComparer.Ordinal);
        foreach (var op in Operators.Where(o => !StandardDomains.Contains(o.Domain) && !local.Contains($"{o.Domain}.{o.OpType}")))
            findings.Add(new(ScanSeverity.Critical, $"custom operator {op.OpType} from domain '{op.Domain}' ({op.Count}x): a runtime needs a custom-op library, native code, to run it"));
        foreach (var tensor in Initializers.Where(t => t.ExternalLocation is { } location && EscapesFolder(location)))
            findings.Add(new(ScanSeverity.High, $"initializer '{tensor.Name}' reads its data from '{tensor.ExternalLocation}', outside the model's folder"));
        return findings;
    }

    /// <summary>An external-data path that is rooted, climbs with "..", or uses a drive or backslash, reaches outside the model's folder.</summary>
    public static bool EscapesFolder(string location) =>
        location.Length == 0 || Path.IsPathRooted(location) || location.Contains('\\', StringComparison.Ordinal) || location.Contains(':', StringComparison.Ordinal)
        || location.Split('/').Any(part => part == "..") || location.Contains('\0', StringComparison.Ordinal);
}

/// <summary>
/// Reads an ONNX model (a protobuf ModelProto) field by field with its own small wire-format reader: no generated code, no reflection,
/// every length checked against the bytes that remain before it is used, nesting (subgraphs in If/Loop attributes, functions) bounded,
/// and counts capped. It never resolves external data or loads operator libraries; it reports them.
/// </summary>
public static class OnnxModelFile
{
    // ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, FunctionProto, OperatorSetIdProto field numbers (onnx.proto3).
    private const int ModelIrVersion = 1, ModelProducer = 2, ModelGraph = 7, ModelOpset = 8, ModelFunctions = 25;
    private const int GraphNode = 1, GraphInitializer = 5;
    private const int NodeOpType = 4, NodeAttribute = 5, NodeDomain = 7;
    private const int AttributeGraph = 6, AttributeGraphs = 11;
    private const int TensorDims = 1, TensorDataType = 2, TensorFloatData = 4, TensorInt32Data = 5, TensorInt64Data = 7, TensorName = 8, TensorRawData = 9,
        TensorDoubleData = 10, TensorExternalData = 13, TensorDataLocation = 14;
    private const int FunctionName = 1, FunctionNode = 3, FunctionDomain = 10;
    private const int OpsetDomain = 1, OpsetVersion = 2;

    public static OnnxModelSummary Read(string path, OnnxLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        limits ??= new OnnxLimits();
        var length = new FileInfo(path).Length;
        if (length > limits.MaxFileBytes) throw new OnnxFormatException($"{length:N0} bytes, over the {limits.MaxFileBytes:N0} byte limit");
        return Read(File.ReadAllBytes(path), limits);
    }

    public static OnnxModelSummary Read(byte[] bytes, OnnxLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        limits ??= new OnnxLimits();
        if (bytes.LongLength > limits.MaxFileBytes) throw new OnnxFormatException($"{bytes.LongLength:N0} bytes, over the {limits.MaxFileBytes:N0} byte limit");
        var state = new State(limits);
        long irVersion = -1;
        var producer = "";
        var graphs = 0;
        var reader = new Reader(bytes, 0, bytes.Length);
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case ModelIrVersion when wire == Reader.Varint: irVersion = reader.ReadInt64(); break;
                case ModelProducer when wire == Reader.Bytes: producer = reader.ReadString(limits.MaxStringBytes); break;
                case ModelGraph when wire == Reader.Bytes: graphs++; Graph(reader.ReadMessage(), state, depth: 1); break;
                case ModelOpset when wire == Reader.Bytes: state.Opsets.Add(Opset(reader.ReadMessage(), limits)); break;
                case ModelFunctions when wire == Reader.Bytes: Function(reader.ReadMessage(), state); break;
                default: reader.Skip(wire); break;
            }
        }
        if (irVersion < 1) throw new OnnxFormatException("no ir_version: not an ONNX model");
        if (graphs != 1) throw new OnnxFormatException(graphs == 0 ? "no graph: not an ONNX model" : $"{graphs} graphs; a model has one");
        var operators = state.Operators.Select(p => new OnnxOperator(p.Key.Domain, p.Key.OpType, p.Value))
            .OrderBy(o => o.Domain, StringComparer.Ordinal).ThenBy(o => o.OpType, StringComparer.Ordinal).ToList();
        return new OnnxModelSummary(irVersion, producer, state.Opsets, operators, state.Initializers, state.Functions, state.Graphs);
    }

    private sealed class State(OnnxLimits limits)
    {
        public OnnxLimits Limits { get; } = limits;
        public List<(string Domain, long Version)> Opsets { get; } = [];
        public Dictionary<(string Domain, string OpType), int> Operators { get; } = [];
        public List<OnnxInitializer> Initializers { get; } = [];
        public List<string> Functions { get; } = [];
        public int Nodes { get; set; }
        public int Graphs { get; set; }
        public long TensorBytes { get; set; }
    }

    private static (string, long) Opset(Reader reader, OnnxLimits limits)
    {
        var (domain, version) = ("", 0L);
        while (reader.Next(out var field, out var wire))
        {
            if (field == OpsetDomain && wire == Reader.Bytes) domain = reader.ReadString(limits.MaxStringBytes);
            else if (field == OpsetVersion && wire == Reader.Varint) version = reader.ReadInt64();
            else reader.Skip(wire);
        }
        return (domain, version);
    }

    private static void Graph(Reader reader, State state, int depth)
    {
        if (depth > state.Limits.MaxDepth) throw new OnnxFormatException($"subgraphs nested deeper than {state.Limits.MaxDepth}");
        state.Graphs++;
        while (reader.Next(out var field, out var wire))
        {
            if (field == GraphNode && wire == Reader.Bytes) Node(reader.ReadMessage(), state, depth);
            else if (field == GraphInitializer && wire == Reader.Bytes)
            {
                if (state.Initializers.Count >= state.Limits.MaxInitializers) throw new OnnxFormatException($"more than {state.Limits.MaxInitializers:N0} initializers");
                state.Initializers.Add(Tensor(reader.ReadMessage(), state));
            }
            else reader.Skip(wire);
        }
    }

    private static void Node(Reader reader, State state, int depth)
    {
        if (++state.Nodes > state.Limits.MaxNodes) throw new OnnxFormatException($"more than {state.Limits.MaxNodes:N0} nodes");
        var (domain, opType) = ("", "");
        while (reader.Next(out var field, out var wire))
        {
            if (field == NodeOpType && wire == Reader.Bytes) opType = reader.ReadString(state.Limits.MaxStringBytes);
            else if (field == NodeDomain && wire == Reader.Bytes) domain = reader.ReadString(state.Limits.MaxStringBytes);
            else if (field == NodeAttribute && wire == Reader.Bytes) Attribute(reader.ReadMessage(), state, depth);
            else reader.Skip(wire);
        }
        if (opType.Length == 0) throw new OnnxFormatException("a node without op_type");
        state.Operators[(domain, opType)] = state.Operators.GetValueOrDefault((domain, opType)) + 1;
    }

    /// <summary>An attribute may hold subgraphs (If's branches, Loop's body), whose nodes count like any other.</summary>
    private static void Attribute(Reader reader, State state, int depth)
    {
        while (reader.Next(out var field, out var wire))
        {
            if ((field == AttributeGraph || field == AttributeGraphs) && wire == Reader.Bytes) Graph(reader.ReadMessage(), state, depth + 1);
            else reader.Skip(wire);
        }
    }

    private static void Function(Reader reader, State state)
    {
        var (name, domain) = ("", "");
        while (reader.Next(out var field, out var wire))
        {
            if (field == FunctionName && wire == Reader.Bytes) name = reader.ReadString(state.Limits.MaxStringBytes);
            else if (field == FunctionDomain && wire == Reader.Bytes) domain = reader.ReadString(state.Limits.MaxStringBytes);
            else if (field == FunctionNode && wire == Reader.Bytes) Node(reader.ReadMessage(), state, depth: 1);
            else reader.Skip(wire);
        }
        state.Functions.Add($"{domain}.{name}");
    }

    private static OnnxInitializer Tensor(Reader reader, State state)
    {
        var dims = new List<long>();
        var (name, dataType, bytes, external) = ("", 0, 0L, (string?)null);
        var location = false;
        var entries = new List<(string Key, string Value)>();
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case TensorDims when wire == Reader.Varint:
                    dims.Add(reader.ReadInt64());
                    break;
                case TensorDims when wire == Reader.Bytes:
                    var packed = reader.ReadMessage();
                    while (!packed.AtEnd) dims.Add(packed.ReadInt64());
                    break;
                case TensorDataType when wire == Reader.Varint: dataType = reader.ReadInt32(); break;
                case TensorName when wire == Reader.Bytes: name = reader.ReadString(state.Limits.MaxStringBytes); break;
                case TensorRawData or TensorFloatData or TensorInt32Data or TensorInt64Data or TensorDoubleData when wire == Reader.Bytes:
                    bytes += reader.SkipBytes();
                    break;
                case TensorExternalData when wire == Reader.Bytes:
                    entries.Add(Entry(reader.ReadMessage(), state.Limits));
                    break;
                case TensorDataLocation when wire == Reader.Varint: location = reader.ReadVarint() == 1; break;
                default: reader.Skip(wire); break;
            }
            if (dims.Count > 64) throw new OnnxFormatException($"initializer '{name}' has more than 64 dimensions");
        }
        state.TensorBytes += bytes;
        if (state.TensorBytes > state.Limits.MaxTensorBytes) throw new OnnxFormatException($"initializers hold more than {state.Limits.MaxTensorBytes:N0} bytes");
        if (location || entries.Count > 0)
            external = entries.FirstOrDefault(e => e.Key == "location").Value ?? "";
        return new OnnxInitializer(name, dataType, [.. dims], bytes, external);
    }

    private static (string, string) Entry(Reader reader, OnnxLimits limits)
    {
        var (key, value) = ("", "");
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == Reader.Bytes) key = reader.ReadString(limits.MaxStringBytes);
            else if (field == 2 && wire == Reader.Bytes) value = reader.ReadString(limits.MaxStringBytes);
            else reader.Skip(wire);
        }
        return (key, value);
    }

    /// <summary>The protobuf wire format over one message's bytes: tags, varints, fixed-size values and length-delimited fields.</summary>
    private sealed class Reader(byte[] buffer, int start, int end)
    {
        public const int Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5;
        private int position = start;

        public bool AtEnd => position >= end;

        public bool Next(out int field, out int wire)
        {
            if (AtEnd)
            {
                (field, wire) = (0, 0);
                return false;
            }
            var at = position;
            var tag = ReadVarint();
            (field, wire) = ((int)Math.Min(tag >> 3, int.MaxValue), (int)(tag & 7));
            if (field == 0) throw new OnnxFormatException($"field number 0 at byte {at}");
            if (wire is not (Varint or Fixed64 or Bytes or Fixed32)) throw new OnnxFormatException($"wire type {wire} (groups or unknown) at byte {at}");
            return true;
        }

        public ulong ReadVarint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (position >= end) throw new OnnxFormatException($"a varint runs past the end of its message at byte {position}");
                var b = buffer[position++];
                value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw new OnnxFormatException($"a varint longer than 10 bytes ends at byte {position}");
        }

        /// <summary>An int64 field: protobuf writes negative values as ten-byte two's complement, so every 64-bit pattern is a value.</summary>
        public long ReadInt64() => unchecked((long)ReadVarint());

        /// <summary>An int32 or enum field: protobuf keeps the low 32 bits of whatever varint was written.</summary>
        public int ReadInt32() => unchecked((int)ReadVarint());

        /// <summary>The next length-delimited field as a reader over its bytes (a nested message or a packed list).</summary>
        public Reader ReadMessage()
        {
            var length = Length();
            var reader = new Reader(buffer, position, position + length);
            position += length;
            return reader;
        }

        public string ReadString(int maxBytes)
        {
            var length = Length();
            if (length > maxBytes) throw new OnnxFormatException($"a {length:N0}-byte string at byte {position}, over the {maxBytes:N0} byte limit");
            var value = Encoding.UTF8.GetString(buffer, position, length);
            position += length;
            return value;
        }

        public long SkipBytes()
        {
            var length = Length();
            position += length;
            return length;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case Varint: ReadVarint(); break;
                case Fixed64: Advance(8); break;
                case Fixed32: Advance(4); break;
                default: SkipBytes(); break;
            }
        }

        private int Length()
        {
            var at = position;
            var length = ReadVarint();
            if (length > (ulong)(end - position)) throw new OnnxFormatException($"a field at byte {at} claims {length:N0} bytes; {end - position:N0} remain in its message");
            return (int)length;
        }

        private void Advance(int count)
        {
            if (end - position < count) throw new OnnxFormatException($"a fixed-size value at byte {position} runs past the end of its message");
            position += count;
        }
    }
}
