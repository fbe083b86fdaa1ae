using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

namespace SecureMnist.Interop;

/// <summary>A pickle that was refused, with the offset of the opcode that caused it.</summary>
public sealed class UnsafePickleException(string message, long offset)
    : Exception($"{message} (at byte {offset} of the pickle)")
{
    public long Offset { get; } = offset;
}

/// <summary>A module-level name a pickle refers to (GLOBAL / STACK_GLOBAL), and whether it is on the allowlist.</summary>
public sealed record PickleGlobal(string Module, string Name, long Offset, bool Allowed)
{
    public string FullName => $"{Module}.{Name}";
}

/// <summary>
/// Bounds on what a pickle may make us allocate and do, each checked before the allocation or step it guards: sizes
/// (pickle, one string, memo, stack, marks, nesting depth, container items) and a work budget (opcodes executed,
/// objects built, bytes materialised, wall-clock time). A state_dict of any real model stays far inside all of them.
/// </summary>
public sealed record PickleLimits(int MaxPickleBytes = 16 << 20, int MaxStringBytes = 1 << 20, int MaxMemo = 100_000,
    int MaxStack = 10_000, int MaxDepth = 32, int MaxItems = 100_000, int MaxOpcodes = 4_000_000, int MaxObjects = 1_000_000,
    long MaxMaterializedBytes = 64L << 20, double MaxSeconds = 5)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxPickleBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxStringBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxMemo);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxStack);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxDepth);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxItems);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxOpcodes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxObjects);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxMaterializedBytes);
        if (!(MaxSeconds > 0)) throw new ArgumentOutOfRangeException(nameof(MaxSeconds), MaxSeconds, "the time budget must be positive");
    }
}

/// <summary>What one <see cref="RestrictedUnpickler.Load(ReadOnlySpan{byte})"/> cost: the work budget's counters.</summary>
public sealed record PickleWork(long Opcodes, long Objects, long MaterializedBytes, long ContainerItems, TimeSpan Elapsed);

// The value model: only these types ever exist while unpickling. Nothing in it can be called.
public sealed record PyTuple(IReadOnlyList<object?> Items);

public sealed class PyList(List<object?> items)
{
    public List<object?> Items { get; } = items;
}

/// <summary>A dict or OrderedDict, with its insertion order.</summary>
public sealed class PyDict
{
    public List<KeyValuePair<object, object?>> Items { get; } = [];
}

/// <summary>A reference to an allowlisted global (a storage type, or a callable we reimplement).</summary>
public sealed record PyGlobal(string Module, string Name);

/// <summary>What a persistent id resolves to: the caller decides (e.g. a tensor storage in the archive).</summary>
public delegate object PersistentLoad(PyTuple persistentId, long offset);

/// <summary>What an allowlisted callable (REDUCE target) builds from its arguments.</summary>
public delegate object? AllowedCallable(PyTuple arguments, long offset);

/// <summary>
/// A pickle reader in the spirit of torch.load(weights_only=True): it understands only the opcodes a state_dict
/// needs, resolves only allowlisted globals, and "calls" only allowlisted callables, each reimplemented here; nothing
/// in the stream is ever imported or executed. In scan mode it records refused globals and keeps going where it can.
/// </summary>
public sealed class RestrictedUnpickler
{
    private static readonly object Opaque = new();

    private readonly IReadOnlyDictionary<string, AllowedCallable?> allowedGlobals;
    private readonly PersistentLoad persistentLoad;
    private readonly PickleLimits limits;
    private readonly bool scanOnly;
    private readonly List<PickleGlobal> globals = [];
    private readonly List<string> problems = [];
    private readonly List<string> otherProblems = [];

    // The state of one Load.
    private readonly List<object?> stack = [];
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = [];
    // Each container's nesting depth, recorded when it is built or grows, so a check never walks a tree.
    private readonly Dictionary<object, int> depths = new(ReferenceEqualityComparer.Instance);
    // Containers already inside another one: their contents are final.
    private readonly HashSet<object> contained = new(ReferenceEqualityComparer.Instance);
    private long opcodes, objects, materialized, items, started = Stopwatch.GetTimestamp();

    /// <param name="allowedGlobals">"module.name" → the callable's reimplementation, or null for a non-callable token (e.g. torch.FloatStorage).</param>
    public RestrictedUnpickler(IReadOnlyDictionary<string, AllowedCallable?> allowedGlobals, PersistentLoad persistentLoad, PickleLimits? limits = null, bool scanOnly = false)
    {
        this.allowedGlobals = allowedGlobals ?? throw new ArgumentNullException(nameof(allowedGlobals));
        this.persistentLoad = persistentLoad ?? throw new ArgumentNullException(nameof(persistentLoad));
        this.limits = limits ?? new PickleLimits();
        this.limits.Validate();
        this.scanOnly = scanOnly;
    }

    /// <summary>Every global the stream referenced, in order.</summary>
    public IReadOnlyList<PickleGlobal> Globals => globals;

    /// <summary>In scan mode: everything that would have been refused.</summary>
    public IReadOnlyList<string> Problems => problems;

    /// <summary>In scan mode: what would have been refused other than a global outside the allowlist (a REDUCE or BUILD on something not allowed).</summary>
    public IReadOnlyList<string> OtherProblems => otherProblems;

    /// <summary>The counters of the last <see cref="Load(ReadOnlySpan{byte})"/>, finished or refused.</summary>
    public PickleWork LastWork => new(opcodes, objects, materialized, items, Stopwatch.GetElapsedTime(started));

    public object? Load(ReadOnlySpan<byte> pickle) => Load(pickle, out _);

    /// <summary>Reads one pickle from the start of the span; <paramref name="consumed"/> is where the next one would begin.</summary>
    public object? Load(ReadOnlySpan<byte> pickle, out int consumed)
    {
        Reset();
        if (pickle.Length > limits.MaxPickleBytes) throw new UnsafePickleException($"pickle is {pickle.Length} bytes, over the {limits.MaxPickleBytes} byte limit", 0);
        var position = 0;
        while (true)
        {
            if (position >= pickle.Length) throw new UnsafePickleException("pickle ends without a STOP opcode (truncated)", position);
            var offset = position;
            var opcode = pickle[position++];
            Step(offset);
            switch (opcode)
            {
                case 0x80: // PROTO
                    var protocol = ReadBytes(pickle, ref position, 1, offset)[0];
                    if (protocol > 5) throw new UnsafePickleException($"pickle protocol {protocol} is not known", offset);
                    break;
                case 0x95: // FRAME: a length hint only
                    ReadBytes(pickle, ref position, 8, offset);
                    break;
                case (byte)'.': // STOP
                    if (stack.Count != 1 || marks.Count != 0) throw new UnsafePickleException($"STOP with {stack.Count} values on the stack (expected exactly 1)", offset);
                    consumed = position;
                    return Unwrap(stack[0]);
                case (byte)'(': // MARK
                    if (marks.Count >= limits.MaxStack) throw new UnsafePickleException($"more than {limits.MaxStack} open MARKs (limit MaxStack)", offset);
                    marks.Push(stack.Count);
                    break;
                case (byte)'N': Push(null, offset); break;
                case 0x88: Push(true, offset); break;
                case 0x89: Push(false, offset); break;
                case (byte)'K': Push((long)ReadBytes(pickle, ref position, 1, offset)[0], offset); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(pickle, ref position, 2, offset)), offset); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(pickle, ref position, 4, offset)), offset); break;
                case 0x8a: // LONG1
                    var longLength = ReadBytes(pickle, ref position, 1, offset)[0];
                    var longBytes = ReadBytes(pickle, ref position, longLength, offset);
                    Push(longLength <= 8 ? ReadLittleEndianSigned(longBytes) : new System.Numerics.BigInteger(longBytes, isUnsigned: false, isBigEndian: false), offset);
                    break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(pickle, ref position, 8, offset)), offset); break;
                case (byte)'X': // BINUNICODE
                    Push(ReadString(pickle, ref position, BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(pickle, ref position, 4, offset)), offset), offset);
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(ReadString(pickle, ref position, ReadBytes(pickle, ref position, 1, offset)[0], offset), offset);
                    break;
                case 0x8d: // BINUNICODE8
                    Push(ReadString(pickle, ref position, BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(pickle, ref position, 8, offset)), offset), offset);
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(Materialize(ReadCapped(pickle, ref position, ReadBytes(pickle, ref position, 1, offset)[0], offset), offset), offset);
                    break;
                case (byte)'B': // BINBYTES
                    Push(Materialize(ReadCapped(pickle, ref position, BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(pickle, ref position, 4, offset)), offset), offset), offset);
                    break;
                case (byte)'}': Push(Built(new PyDict(), 1, offset), offset); break;
                case (byte)']': Push(Built(new PyList([]), 1, offset), offset); break;
                case (byte)')': Push(Tuple([], offset), offset); break;
                case 0x85: Push(Tuple(PopMany(1, offset), offset), offset); break;
                case 0x86: Push(Tuple(PopMany(2, offset), offset), offset); break;
                case 0x87: Push(Tuple(PopMany(3, offset), offset), offset); break;
                case (byte)'t': Push(Tuple(PopToMark(offset), offset), offset); break;
                case (byte)'q': Put(ReadBytes(pickle, ref position, 1, offset)[0], offset); break;
                case (byte)'r': Put(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(pickle, ref position, 4, offset)), offset); break;
                case 0x94: Put(memo.Count, offset); break; // MEMOIZE
                case (byte)'h': Push(Get(ReadBytes(pickle, ref position, 1, offset)[0], offset), offset); break;
                case (byte)'j': Push(Get(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(pickle, ref position, 4, offset)), offset), offset); break;
                case (byte)'c': // GLOBAL "module\nname\n"
                    var module = ReadLine(pickle, ref position, offset);
                    var name = ReadLine(pickle, ref position, offset);
                    Push(ResolveGlobal(module, name, offset), offset);
                    break;
                case 0x93: // STACK_GLOBAL
                    var globalName = PopMany(2, offset);
                    if (globalName[0] is not string stackModule || globalName[1] is not string stackName)
                        throw new UnsafePickleException("STACK_GLOBAL needs two strings", offset);
                    Push(ResolveGlobal(stackModule, stackName, offset), offset);
                    break;
                case (byte)'R': // REDUCE: callable(*args)
                    var reduce = PopMany(2, offset);
                    Push(Call(reduce[0], reduce[1], offset), offset);
                    break;
                case (byte)'Q': // BINPERSID
                    var persistentId = PopMany(1, offset)[0];
                    if (persistentId is not PyTuple idTuple) throw new UnsafePickleException("a persistent id must be a tuple", offset);
                    Push(scanOnly ? Opaque : persistentLoad(idTuple, offset), offset);
                    break;
                case (byte)'b': // BUILD: only the state dict that OrderedDict carries (state_dict()._metadata)
                    var state = PopMany(1, offset)[0];
                    var target = Peek(offset);
                    if (target != Opaque && (target is not PyDict || state is not (PyDict or null)))
                        Refuse($"BUILD on {Describe(target)} is not allowed (only an OrderedDict's attribute dict is)", offset);
                    break;
                case (byte)'s': // SETITEM
                    var pair = PopMany(2, offset);
                    SetItems(Peek(offset), pair, offset);
                    break;
                case (byte)'u': // SETITEMS
                    SetItems(PeekBelowMark(offset), PopToMark(offset), offset);
                    break;
                case (byte)'a': // APPEND
                    var appended = PopMany(1, offset);
                    Append(Peek(offset), appended, offset);
                    break;
                case (byte)'e': // APPENDS
                    Append(PeekBelowMark(offset), PopToMark(offset), offset);
                    break;
                default:
                    throw new UnsafePickleException($"opcode {OpcodeName(opcode)} is not allowed (it is not needed for tensors and dicts)", offset);
            }
        }
    }

    private void Reset()
    {
        stack.Clear();
        marks.Clear();
        memo.Clear();
        depths.Clear();
        contained.Clear();
        (opcodes, objects, materialized, items) = (0, 0, 0, 0);
        started = Stopwatch.GetTimestamp();
    }

    /// <summary>Counts an opcode against the budget, and looks at the clock every 4,096 of them.</summary>
    private void Step(long offset)
    {
        if (++opcodes > limits.MaxOpcodes) throw new UnsafePickleException($"more than {limits.MaxOpcodes} opcodes (limit MaxOpcodes)", offset);
        if ((opcodes & 0xFFF) == 0 && Stopwatch.GetElapsedTime(started).TotalSeconds > limits.MaxSeconds)
            throw new UnsafePickleException($"reading took longer than the {limits.MaxSeconds:0.###} s time budget (limit MaxSeconds)", offset);
    }

    /// <summary>Counts a new object against the budget and records its nesting depth.</summary>
    private T Built<T>(T value, int depth, long offset) where T : notnull
    {
        if (++objects > limits.MaxObjects) throw new UnsafePickleException($"more than {limits.MaxObjects} objects built (limit MaxObjects)", offset);
        if (depth > limits.MaxDepth) throw new UnsafePickleException($"structure nested deeper than {limits.MaxDepth} levels (limit MaxDepth)", offset);
        if (value is PyTuple or PyList or PyDict) depths[value] = depth;
        return value;
    }

    private byte[] Materialize(ReadOnlySpan<byte> bytes, long offset)
    {
        materialized += bytes.Length;
        if (materialized > limits.MaxMaterializedBytes)
            throw new UnsafePickleException($"more than {limits.MaxMaterializedBytes} bytes of strings and bytes (limit MaxMaterializedBytes)", offset);
        return Built(bytes.ToArray(), 0, offset);
    }

    private object ResolveGlobal(string module, string name, long offset)
    {
        var fullName = $"{module}.{name}";
        var allowed = allowedGlobals.ContainsKey(fullName);
        globals.Add(new PickleGlobal(module, name, offset, allowed));
        if (!allowed) Refuse($"global {fullName} is not allowed (only the tensor and OrderedDict globals a state_dict needs are)", offset, isGlobal: true);
        return allowed ? Built(new PyGlobal(module, name), 0, offset) : Opaque;
    }

    private object? Call(object? callable, object? arguments, long offset)
    {
        if (arguments is not PyTuple tuple) throw new UnsafePickleException("REDUCE needs an argument tuple", offset);
        if (callable == Opaque) return Opaque; // scan mode: already reported
        if (callable is not PyGlobal global || allowedGlobals[$"{global.Module}.{global.Name}"] is not { } implementation)
        {
            Refuse($"REDUCE on {Describe(callable)} is not allowed (only allowlisted callables)", offset);
            return Opaque;
        }
        if (scanOnly) return Opaque;
        var result = implementation(tuple, offset);
        return result is null ? null : Built(result, result is PyDict or PyList or PyTuple ? 1 : 0, offset);
    }

    private void Refuse(string problem, long offset, bool isGlobal = false)
    {
        if (!scanOnly) throw new UnsafePickleException(problem, offset);
        var located = $"{problem} (at byte {offset})";
        problems.Add(located);
        if (!isGlobal) otherProblems.Add(located);
    }

    private void SetItems(object? target, List<object?> values, long offset)
    {
        if (values.Count % 2 != 0) throw new UnsafePickleException("SETITEMS needs key/value pairs", offset);
        if (target == Opaque) return;
        if (target is not PyDict dict) throw new UnsafePickleException($"SETITEM(S) on {Describe(target)}", offset);
        for (var i = 0; i < values.Count; i += 2)
        {
            if (values[i] is not (string or long or bool))
                throw new UnsafePickleException($"dict key of type {Describe(values[i])} is not allowed", offset);
        }
        var dictValues = new List<object?>(values.Count / 2);
        for (var i = 1; i < values.Count; i += 2) dictValues.Add(values[i]);
        Grow(dict, dictValues, offset);
        for (var i = 0; i < values.Count; i += 2) dict.Items.Add(new(values[i]!, values[i + 1]));
    }

    private void Append(object? target, List<object?> values, long offset)
    {
        if (target == Opaque) return;
        if (target is not PyList list) throw new UnsafePickleException($"APPEND(S) on {Describe(target)}", offset);
        Grow(list, values, offset);
        list.Items.AddRange(values);
    }

    /// <summary>
    /// Adds items to a list or dict. The items become contained (final), and a container that is itself contained may
    /// not grow: so every depth recorded stays true, a shared reference costs one lookup, and no cycle can form.
    /// </summary>
    private void Grow(object container, List<object?> values, long offset)
    {
        items += values.Count;
        if (items > limits.MaxItems) throw new UnsafePickleException($"more than {limits.MaxItems} container items (limit MaxItems)", offset);
        var depth = Contain(values, offset);
        if (contained.Contains(container))
            throw new UnsafePickleException($"{Describe(container)} is changed after it was put inside another container (a shared or cyclic structure)", offset);
        if (depth + 1 > depths[container]) Built(container, depth + 1, offset);
    }

    private PyTuple Tuple(List<object?> values, long offset) => Built(new PyTuple(values), Contain(values, offset) + 1, offset);

    /// <summary>Marks the values as contained and returns the deepest of their recorded depths.</summary>
    private int Contain(List<object?> values, long offset)
    {
        var deepest = 0;
        foreach (var value in values)
        {
            if (value is not (PyTuple or PyList or PyDict)) continue;
            deepest = Math.Max(deepest, depths.TryGetValue(value, out var depth) ? depth : throw new UnsafePickleException("a container of unknown origin", offset));
            contained.Add(value);
        }
        return deepest;
    }

    private void Push(object? value, long offset)
    {
        if (stack.Count >= limits.MaxStack) throw new UnsafePickleException($"stack deeper than {limits.MaxStack} (limit MaxStack)", offset);
        stack.Add(value);
    }

    /// <summary>Values above the newest MARK; as in CPython, the MARK is a fence no opcode but a MARK-consumer reaches below.</summary>
    private int Fence => marks.Count == 0 ? 0 : marks.Peek();

    private object? Peek(long offset)
    {
        if (stack.Count <= Fence) throw new UnsafePickleException("stack underflow (nothing above the MARK)", offset);
        return stack[^1];
    }

    private object? PeekBelowMark(long offset)
    {
        if (marks.Count == 0) throw new UnsafePickleException("no MARK on the stack", offset);
        var index = marks.Peek() - 1;
        if (index < 0 || index >= stack.Count) throw new UnsafePickleException("stack underflow", offset);
        return stack[index];
    }

    private List<object?> PopMany(int count, long offset)
    {
        if (stack.Count - count < Fence) throw new UnsafePickleException("stack underflow (below the MARK)", offset);
        var values = stack.GetRange(stack.Count - count, count);
        stack.RemoveRange(stack.Count - count, count);
        return values;
    }

    private List<object?> PopToMark(long offset)
    {
        if (marks.Count == 0) throw new UnsafePickleException("no MARK on the stack", offset);
        var start = marks.Pop();
        if (start > stack.Count) throw new UnsafePickleException("stack underflow below MARK", offset);
        var values = stack.GetRange(start, stack.Count - start);
        stack.RemoveRange(start, stack.Count - start);
        return values;
    }

    private void Put(long index, long offset)
    {
        if (memo.Count >= limits.MaxMemo && !memo.ContainsKey(index)) throw new UnsafePickleException($"more than {limits.MaxMemo} memo entries (limit MaxMemo)", offset);
        memo[index] = Peek(offset);
    }

    private object? Get(long index, long offset) =>
        memo.TryGetValue(index, out var value) ? value : throw new UnsafePickleException($"memo entry {index} does not exist", offset);

    private static object? Unwrap(object? value) => value == Opaque ? null : value;

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> pickle, ref int position, int count, long offset)
    {
        if (count > pickle.Length - position) throw new UnsafePickleException("pickle ends inside an opcode's argument (truncated)", offset);
        var bytes = pickle.Slice(position, count);
        position += count;
        return bytes;
    }

    /// <summary>Checks a length field against the limit and the bytes that are really there before touching memory.</summary>
    private ReadOnlySpan<byte> ReadCapped(ReadOnlySpan<byte> pickle, ref int position, ulong length, long offset)
    {
        if (length > (ulong)limits.MaxStringBytes) throw new UnsafePickleException($"length field says {length} bytes, over the {limits.MaxStringBytes} byte limit", offset);
        return ReadBytes(pickle, ref position, (int)length, offset);
    }

    private string ReadString(ReadOnlySpan<byte> pickle, ref int position, ulong length, long offset)
    {
        var bytes = ReadCapped(pickle, ref position, length, offset);
        materialized += 2L * bytes.Length;
        if (materialized > limits.MaxMaterializedBytes)
            throw new UnsafePickleException($"more than {limits.MaxMaterializedBytes} bytes of strings and bytes (limit MaxMaterializedBytes)", offset);
        try
        {
            return Built(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes), 0, offset);
        }
        catch (DecoderFallbackException)
        {
            throw new UnsafePickleException("string is not valid UTF-8", offset);
        }
    }

    private static string ReadLine(ReadOnlySpan<byte> pickle, ref int position, long offset)
    {
        var rest = pickle[position..];
        var end = rest[..Math.Min(rest.Length, 256)].IndexOf((byte)'\n');
        if (end < 0) throw new UnsafePickleException("GLOBAL name is not terminated within 256 bytes", offset);
        var line = Encoding.ASCII.GetString(rest[..end]);
        if (line.Length == 0 || line.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '_' or '.')))
            throw new UnsafePickleException($"GLOBAL name '{line}' is not a plain dotted identifier", offset);
        position += end + 1;
        return line;
    }

    private static long ReadLittleEndianSigned(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) return 0;
        Span<byte> buffer = stackalloc byte[8];
        buffer.Fill((bytes[^1] & 0x80) != 0 ? (byte)0xFF : (byte)0);
        bytes.CopyTo(buffer);
        return BinaryPrimitives.ReadInt64LittleEndian(buffer);
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        PyGlobal g => $"{g.Module}.{g.Name}",
        PyDict => "a dict",
        PyList => "a list",
        PyTuple => "a tuple",
        string => "a string",
        long => "an int",
        _ when value == Opaque => "a refused object",
        _ => value.GetType().Name,
    };

    private static string OpcodeName(byte opcode) => opcode switch
    {
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        (byte)'P' => "PERSID",
        0x82 or 0x83 or 0x84 => "EXT",
        (byte)'S' or (byte)'T' or (byte)'U' => "STRING/BINSTRING",
        (byte)'V' => "UNICODE",
        (byte)'I' or (byte)'L' => "INT/LONG (text)",
        (byte)'F' => "FLOAT (text)",
        0x8b => "LONG4",
        0x8e => "BINBYTES8",
        0x8f or 0x90 or 0x91 => "SET/FROZENSET",
        0x96 or 0x97 or 0x98 => "BYTEARRAY/BUFFER",
        (byte)'g' or (byte)'p' => "GET/PUT (text)",
        (byte)'0' or (byte)'1' or (byte)'2' => "POP/POP_MARK/DUP",
        (byte)'l' or (byte)'d' => "LIST/DICT",
        _ => $"0x{opcode:x2}",
    } + $" (0x{opcode:x2})";
}
