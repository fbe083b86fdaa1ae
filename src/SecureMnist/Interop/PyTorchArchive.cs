using System.Buffers.Binary;
using System.IO.Compression;

namespace SecureMnist.Interop;

/// <summary>A PyTorch file that cannot be imported, with the reason.</summary>
public sealed class PyTorchFormatException(string message) : Exception(message);

/// <summary>One tensor of a state_dict, converted to float32 and made contiguous.</summary>
public sealed record PyTorchTensor(string Name, long[] Shape, float[] Values, string StorageType);

/// <summary>A state_dict read from a PyTorch zip file, and every global its pickle referenced.</summary>
public sealed record PyTorchStateDict(string ArchiveName, IReadOnlyList<PyTorchTensor> Tensors, IReadOnlyList<PickleGlobal> Globals);

/// <summary>
/// What a scan-mode read of a pickle saw: every global it referenced, each refusal, and, when a limit or a malformed opcode stopped it
/// early, why. A scan that stopped early has not seen the rest of the pickle: the rest is unknown, never safe.
/// </summary>
/// <param name="Refusals">Everything that would have been refused, in order.</param>
/// <param name="OtherRefusals">The refusals that are not a global outside the allowlist (a REDUCE or BUILD on something not allowed).</param>
/// <param name="StoppedBy">Why the scan stopped before the end, or null when it read every pickle to its STOP.</param>
public sealed record PickleScan(IReadOnlyList<PickleGlobal> Globals, IReadOnlyList<string> Refusals, IReadOnlyList<string> OtherRefusals, string? StoppedBy)
{
    /// <summary>Every reason to refuse, the early stop last.</summary>
    public IReadOnlyList<string> Problems => StoppedBy is null ? Refusals : [.. Refusals, StoppedBy];
}

/// <summary>Bounds on the zip container (entries, sizes, compression ratio), checked against what is really read.</summary>
public sealed record PyTorchArchiveLimits(long MaxFileBytes = 2L << 30, long MaxEntryBytes = 1L << 30, long MaxTotalBytes = 2L << 30,
    int MaxEntries = 10_000, double MaxCompressionRatio = 200, long MaxTensorElements = 256L << 20, int MaxPickleBytes = 16 << 20);

/// <summary>
/// Reads PyTorch's zip format (torch.save since 1.6: ARCHIVE/data.pkl plus one entry per storage under ARCHIVE/data/)
/// through <see cref="RestrictedUnpickler"/>. The legacy format (a bare pickle stream) is refused.
/// </summary>
public static class PyTorchArchive
{
    /// <summary>The globals a state_dict pickle needs, as torch.load(weights_only=True) allows them.</summary>
    public static IReadOnlyDictionary<string, int> StorageElementSizes { get; } = new Dictionary<string, int>
    {
        ["torch.FloatStorage"] = 4,
        ["torch.DoubleStorage"] = 8,
        ["torch.HalfStorage"] = 2,
        // BatchNorm's num_batches_tracked; read as float like every tensor here (exact up to 2^24 batches).
        ["torch.LongStorage"] = 8,
    };

    public static IReadOnlyCollection<string> AllowedGlobals { get; } =
        ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", .. StorageElementSizes.Keys];

    private sealed record StorageRef(string Key, string StorageType, long Elements);

    private sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Strides);

    public static PyTorchStateDict ReadStateDict(string path, PyTorchArchiveLimits? limits = null)
    {
        limits ??= new PyTorchArchiveLimits();
        var length = new FileInfo(path).Length;
        if (length > limits.MaxFileBytes) throw new PyTorchFormatException($"{path} is {length} bytes, over the {limits.MaxFileBytes} byte limit");
        using var stream = File.OpenRead(path);
        var kind = ModelFileKinds.Sniff(stream);
        if (kind == ModelFileKind.PyTorchLegacy)
            throw new PyTorchFormatException("this is PyTorch's legacy (pre-1.6) format, a bare pickle stream; it is not imported. Re-save it with torch.save(model.state_dict(), path) in PyTorch 1.6 or newer (the zip format)");
        if (kind != ModelFileKind.PyTorchZip) throw new PyTorchFormatException($"not a PyTorch zip file (looks like: {ModelFileKinds.Describe(kind)})");
        stream.Position = 0;
        using var archive = Open(stream, limits);
        var unpickler = new RestrictedUnpickler(Callables(limits), (id, offset) => LoadStorage(archive, id, offset), PickleLimitsOf(limits));
        var root = unpickler.Load(archive.Read(archive.Prefix + "data.pkl"));
        var tensors = Materialize(archive, StateDictOf(root), limits);
        return new PyTorchStateDict(archive.Prefix.TrimEnd('/'), tensors, unpickler.Globals);
    }

    /// <summary>Lists the globals of the archive's pickle and what would be refused, without building anything.</summary>
    internal static PickleScan Scan(Stream stream, PyTorchArchiveLimits? limits = null)
    {
        limits ??= new PyTorchArchiveLimits();
        using var archive = Open(stream, limits);
        var pickle = archive.Read(archive.Prefix + "data.pkl");
        return ScanPickles(pickle, maxPickles: 1, PickleLimitsOf(limits), limits);
    }

    /// <summary>Scans consecutive pickles (a legacy torch.save file holds several before its raw storages).</summary>
    internal static PickleScan ScanPickles(ReadOnlySpan<byte> bytes, int maxPickles) =>
        ScanPickles(bytes, maxPickles, pickleLimits: null, new PyTorchArchiveLimits());

    private static PickleScan ScanPickles(ReadOnlySpan<byte> bytes, int maxPickles, PickleLimits? pickleLimits, PyTorchArchiveLimits limits)
    {
        var unpickler = new RestrictedUnpickler(Callables(limits), (_, _) => throw new InvalidOperationException(), pickleLimits, scanOnly: true);
        var position = 0;
        string? stoppedBy = null;
        try
        {
            // The first pickle is always read (an empty or protocol-0 stream is refused by the read, not skipped); the next ones while a PROTO opens them.
            for (var i = 0; i < maxPickles && (i == 0 || (position < bytes.Length && bytes[position] == 0x80)); i++)
            {
                unpickler.Load(bytes[position..], out var consumed);
                position += consumed;
            }
        }
        catch (UnsafePickleException e)
        {
            stoppedBy = e.Message;
        }
        return new PickleScan(unpickler.Globals, unpickler.Problems, unpickler.OtherProblems, stoppedBy);
    }

    /// <summary>
    /// Reads a bare pickle the way the archive reader does, with the state_dict globals but no archive behind it (each
    /// storage is as large as its persistent id claims): first in scan mode, then in load mode, then as a state_dict.
    /// For the fuzzer and tests of the pickle layer.
    /// </summary>
    internal static int ReadPickle(byte[] pickle)
    {
        var limits = new PyTorchArchiveLimits();
        var problems = ScanPickles(pickle, maxPickles: 1).Problems;
        var unpickler = new RestrictedUnpickler(Callables(limits), (id, offset) => ClaimedStorage(id, offset, limits), PickleLimitsOf(limits));
        var root = unpickler.Load(pickle);
        if (problems.Count > 0) throw new UnsafePickleException($"the scan refused what the load accepted: {problems[0]}", 0);
        try
        {
            return StateDictOf(root).Count;
        }
        catch (PyTorchFormatException e)
        {
            throw new UnsafePickleException(e.Message, 0);
        }
    }

    private static PickleLimits PickleLimitsOf(PyTorchArchiveLimits limits) => new(MaxPickleBytes: limits.MaxPickleBytes);

    private static Dictionary<string, AllowedCallable?> Callables(PyTorchArchiveLimits limits)
    {
        var callables = StorageElementSizes.Keys.ToDictionary(k => k, _ => (AllowedCallable?)null);
        callables["collections.OrderedDict"] = (arguments, offset) => arguments.Items.Count == 0
            ? new PyDict()
            : throw new UnsafePickleException("OrderedDict() is only accepted without arguments", offset);
        callables["torch._utils._rebuild_tensor_v2"] = (arguments, offset) => RebuildTensor(arguments, offset, limits);
        callables["torch._utils._rebuild_parameter"] = (arguments, offset) => arguments.Items.Count == 3 && arguments.Items[0] is TensorRef tensor
            ? tensor
            : throw new UnsafePickleException("_rebuild_parameter needs (tensor, requires_grad, hooks)", offset);
        return callables;
    }

    private static StorageRef LoadStorage(CheckedZip archive, PyTuple id, long offset)
    {
        var (key, typeName, elementSize, elements) = ParseStorageId(id, offset);
        var entry = archive.Prefix + "data/" + key;
        var declared = archive.DeclaredLength(entry) ?? throw new UnsafePickleException($"storage '{key}' has no entry {entry} in the archive", offset);
        if (elements < 0 || elements > declared / elementSize || declared != elements * elementSize)
            throw new UnsafePickleException($"storage '{key}' claims {elements} elements of {elementSize} bytes, but {entry} holds {declared} bytes", offset);
        return new StorageRef(key, typeName, elements);
    }

    /// <summary>A storage as its persistent id describes it, for a pickle read without its archive (its numel taken on trust, within the limit).</summary>
    private static StorageRef ClaimedStorage(PyTuple id, long offset, PyTorchArchiveLimits limits)
    {
        var (key, typeName, _, elements) = ParseStorageId(id, offset);
        if (elements < 0 || elements > limits.MaxTensorElements) throw new UnsafePickleException($"storage '{key}' claims {elements} elements", offset);
        return new StorageRef(key, typeName, elements);
    }

    private static (string Key, string TypeName, int ElementSize, long Elements) ParseStorageId(PyTuple id, long offset)
    {
        if (id.Items.Count != 5 || id.Items[0] is not "storage" || id.Items[1] is not PyGlobal type || id.Items[2] is not string key
            || id.Items[3] is not string location || id.Items[4] is not long elements)
            throw new UnsafePickleException("persistent id is not ('storage', type, key, location, numel)", offset);
        var typeName = $"{type.Module}.{type.Name}";
        if (!StorageElementSizes.TryGetValue(typeName, out var elementSize)) throw new UnsafePickleException($"storage type {typeName} is not supported", offset);
        if (key.Length is 0 or > 32 || !key.All(char.IsAsciiLetterOrDigit)) throw new UnsafePickleException($"storage key '{key}' is not a plain name", offset);
        if (location != "cpu" && !location.StartsWith("cuda", StringComparison.Ordinal) && location != "mps")
            throw new UnsafePickleException($"storage location '{location}' is not a device", offset);
        return (key, typeName, elementSize, elements);
    }

    private static TensorRef RebuildTensor(PyTuple arguments, long offset, PyTorchArchiveLimits limits)
    {
        if (arguments.Items.Count is < 6 or > 7 || arguments.Items[0] is not StorageRef storage || arguments.Items[1] is not long storageOffset
            || arguments.Items[2] is not PyTuple size || arguments.Items[3] is not PyTuple stride || arguments.Items[4] is not bool)
            throw new UnsafePickleException("_rebuild_tensor_v2 needs (storage, offset, size, stride, requires_grad, hooks)", offset);
        if (size.Items.Count != stride.Items.Count || size.Items.Count > 8 || size.Items.Concat(stride.Items).Any(v => v is not long n || n < 0))
            throw new UnsafePickleException("tensor size and stride must be equally long tuples of non-negative ints (at most 8)", offset);
        var shape = size.Items.Select(v => (long)v!).ToArray();
        var strides = stride.Items.Select(v => (long)v!).ToArray();
        try
        {
            var elements = shape.Aggregate(1L, (p, s) => checked(p * s));
            if (elements > limits.MaxTensorElements) throw new UnsafePickleException($"tensor of {elements} elements is over the {limits.MaxTensorElements} limit", offset);
            // A view (strides of 0, or overlapping) could claim far more elements than its file holds.
            if (elements > storage.Elements) throw new UnsafePickleException($"tensor of {elements} elements views a storage of {storage.Elements}", offset);
            if (elements > 0)
            {
                var last = storageOffset + shape.Zip(strides).Sum(p => checked((p.First - 1) * p.Second));
                if (storageOffset < 0 || last >= storage.Elements)
                    throw new UnsafePickleException($"tensor reaches element {last} of a storage with {storage.Elements}", offset);
            }
        }
        catch (OverflowException)
        {
            throw new UnsafePickleException("tensor size or stride overflows", offset);
        }
        return new TensorRef(storage, storageOffset, shape, strides);
    }

    /// <summary>A state_dict is a dict of name → tensor; training checkpoints often wrap it under a well-known key.</summary>
    private static List<KeyValuePair<string, TensorRef>> StateDictOf(object? root)
    {
        if (root is not PyDict dict) throw new PyTorchFormatException("the file does not hold a dict (a state_dict); save model.state_dict(), not the model object");
        if (dict.Items.Count > 0 && dict.Items.All(kv => kv.Key is string && kv.Value is TensorRef))
            return dict.Items.Select(kv => new KeyValuePair<string, TensorRef>((string)kv.Key, (TensorRef)kv.Value!)).ToList();
        foreach (var wrapper in new[] { "state_dict", "model_state_dict", "model" })
        {
            var inner = dict.Items.FirstOrDefault(kv => wrapper.Equals(kv.Key)).Value;
            if (inner is PyDict) return StateDictOf(inner);
        }
        var keys = string.Join(", ", dict.Items.Take(8).Select(kv => kv.Key));
        throw new PyTorchFormatException($"the dict is not a state_dict (keys: {keys}); expected names mapped to tensors, or a checkpoint with state_dict / model_state_dict");
    }

    private static List<PyTorchTensor> Materialize(CheckedZip archive, List<KeyValuePair<string, TensorRef>> entries, PyTorchArchiveLimits limits)
    {
        var storages = new Dictionary<string, float[]>();
        var tensors = new List<PyTorchTensor>();
        long total = 0;
        foreach (var (name, tensor) in entries)
        {
            if (!storages.TryGetValue(tensor.Storage.Key, out var storage))
            {
                storage = ReadStorage(archive, tensor.Storage);
                storages[tensor.Storage.Key] = storage;
            }
            var elements = tensor.Shape.Aggregate(1L, (p, s) => p * s);
            total += elements;
            if (total > limits.MaxTensorElements) throw new PyTorchFormatException($"the tensors hold more than {limits.MaxTensorElements} elements");
            tensors.Add(new PyTorchTensor(name, tensor.Shape, Gather(storage, tensor, elements), tensor.Storage.StorageType));
        }
        return tensors;
    }

    private static float[] ReadStorage(CheckedZip archive, StorageRef storage)
    {
        var bytes = archive.Read(archive.Prefix + "data/" + storage.Key);
        var values = new float[storage.Elements];
        switch (storage.StorageType)
        {
            case "torch.FloatStorage":
                for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
                break;
            case "torch.DoubleStorage":
                for (var i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(8 * i));
                break;
            case "torch.LongStorage":
                for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8 * i));
                break;
            default:
                for (var i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan(2 * i));
                break;
        }
        return values;
    }

    /// <summary>Copies a strided view into a contiguous row-major array (bounds were checked when the tensor was built).</summary>
    private static float[] Gather(float[] storage, TensorRef tensor, long elements)
    {
        var values = new float[elements];
        var index = new long[tensor.Shape.Length];
        for (long i = 0; i < elements; i++)
        {
            var source = tensor.Offset;
            for (var d = 0; d < index.Length; d++) source += index[d] * tensor.Strides[d];
            values[i] = storage[source];
            for (var d = index.Length - 1; d >= 0; d--)
            {
                if (++index[d] < tensor.Shape[d]) break;
                index[d] = 0;
            }
        }
        return values;
    }

    private static CheckedZip Open(Stream stream, PyTorchArchiveLimits limits)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new PyTorchFormatException($"the zip container is damaged: {e.Message}");
        }
        try
        {
            return new CheckedZip(zip, stream.Length, limits);
        }
        catch (InvalidDataException e)
        {
            // ZipArchive reads the central directory lazily, so a damaged one surfaces here, not in its constructor.
            zip.Dispose();
            throw new PyTorchFormatException($"the zip container is damaged: {e.Message}");
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>A zip whose entry names and sizes were checked up front, and whose reads are capped by what was declared.</summary>
    private sealed class CheckedZip : IDisposable
    {
        private readonly ZipArchive zip;
        private readonly Dictionary<string, ZipArchiveEntry> entries = new(StringComparer.Ordinal);

        public CheckedZip(ZipArchive zip, long fileBytes, PyTorchArchiveLimits limits)
        {
            this.zip = zip;
            if (zip.Entries.Count > limits.MaxEntries) throw new PyTorchFormatException($"the archive has {zip.Entries.Count} entries, over the {limits.MaxEntries} limit");
            // Sizes in the headers are claims: each entry's compressed size must fit in the file that holds it, so what an
            // entry may expand to (its ratio times that) is bounded by the input, not by what it says.
            long total = 0, compressedTotal = 0;
            string? prefix = null;
            foreach (var entry in zip.Entries)
            {
                var name = entry.FullName;
                if (name.Length == 0 || name.StartsWith('/') || name.Contains('\\') || name.Contains(':') || name.Any(char.IsControl)
                    || name.Split('/').Any(segment => segment is ".." or "."))
                    throw new PyTorchFormatException($"zip entry name '{name}' is not a plain relative path (path traversal)");
                var top = name.Split('/')[0];
                prefix ??= top;
                if (top != prefix || !name.Contains('/')) throw new PyTorchFormatException($"zip entry '{name}' is outside the archive folder '{prefix}/'");
                if (!entries.TryAdd(name, entry)) throw new PyTorchFormatException($"zip entry '{name}' appears twice");
                if (entry.Length > limits.MaxEntryBytes) throw new PyTorchFormatException($"zip entry '{name}' declares {entry.Length} bytes, over the {limits.MaxEntryBytes} limit");
                compressedTotal += entry.CompressedLength;
                if (entry.CompressedLength > fileBytes || compressedTotal > fileBytes)
                    throw new PyTorchFormatException($"zip entry '{name}' claims {entry.CompressedLength} compressed bytes; the entries claim {compressedTotal} in a {fileBytes} byte file");
                if (entry.Length > 1 << 20 && entry.Length > entry.CompressedLength * limits.MaxCompressionRatio)
                    throw new PyTorchFormatException($"zip entry '{name}' expands {entry.Length / Math.Max(1, entry.CompressedLength)}x (zip bomb)");
                total += entry.Length;
                if (total > limits.MaxTotalBytes) throw new PyTorchFormatException($"the archive expands to more than {limits.MaxTotalBytes} bytes");
            }
            Prefix = (prefix ?? throw new PyTorchFormatException("the archive is empty")) + "/";
            if (!entries.TryGetValue(Prefix + "data.pkl", out var pickle)) throw new PyTorchFormatException($"the archive has no {Prefix}data.pkl (not a torch.save file)");
            if (pickle.Length > limits.MaxPickleBytes)
                throw new PyTorchFormatException($"{Prefix}data.pkl declares {pickle.Length} bytes, over the {limits.MaxPickleBytes} byte limit for a pickle");
        }

        public string Prefix { get; }

        public long? DeclaredLength(string name) => entries.TryGetValue(name, out var entry) ? entry.Length : null;

        /// <summary>Reads an entry, refusing it when it inflates past its declared size (headers can lie).</summary>
        public byte[] Read(string name)
        {
            var entry = entries[name];
            var buffer = new byte[entry.Length];
            try
            {
                using var stream = entry.Open();
                var read = 0;
                while (read < buffer.Length)
                {
                    var n = stream.Read(buffer, read, buffer.Length - read);
                    if (n == 0) throw new PyTorchFormatException($"zip entry '{name}' is shorter than its header says (truncated)");
                    read += n;
                }
                Span<byte> probe = stackalloc byte[1];
                if (stream.Read(probe) != 0) throw new PyTorchFormatException($"zip entry '{name}' inflates past its declared {entry.Length} bytes (zip bomb)");
            }
            catch (InvalidDataException e)
            {
                throw new PyTorchFormatException($"zip entry '{name}' is damaged: {e.Message}");
            }
            return buffer;
        }

        public void Dispose() => zip.Dispose();
    }
}
