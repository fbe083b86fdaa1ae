using System.Buffers.Binary;
using SecureMnist.Security;

namespace SecureMnist.Interop;

public enum ModelFileKind
{
    SecureMnistPackage,
    Safetensors,
    PyTorchZip,
    PyTorchLegacy,
    Pickle,
    Onnx,
    Unknown,
}

/// <summary>Recognises model files by their first bytes, never by their names.</summary>
public static class ModelFileKinds
{
    // torch.save's legacy format starts with a pickled LONG1 magic number: 0x1950a86a20f9469cfc6c.
    private static readonly byte[] LegacyMagic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    public static ModelFileKind Sniff(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> head = stackalloc byte[16];
        var read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        head = head[..read];
        if (head.StartsWith("PK\x03\x04"u8)) return ModelFileKind.PyTorchZip;
        if (head.StartsWith(LegacyMagic)) return ModelFileKind.PyTorchLegacy;
        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5) return ModelFileKind.Pickle;
        if (head.Length >= 9 && head[8] == (byte)'{' && BinaryPrimitives.ReadUInt64LittleEndian(head) is > 1 and <= Safetensors.MaxHeaderBytes)
            return ModelFileKind.Safetensors;
        // An ONNX ModelProto opens with ir_version (field 1, a small varint), then producer_name, a string field, or another field a
        // writer puts first (domain, model_version, doc_string, graph).
        if (head.Length >= 3 && head[0] == 0x08 && head[1] is >= 1 and <= 20 && head[2] is 0x12 or 0x1a or 0x22 or 0x28 or 0x32 or 0x3a or 0x42)
            return ModelFileKind.Onnx;
        return ModelFileKind.Unknown;
    }

    public static string Describe(ModelFileKind kind) => kind switch
    {
        ModelFileKind.SecureMnistPackage => "a securemnist model package",
        ModelFileKind.Safetensors => "safetensors",
        ModelFileKind.PyTorchZip => "PyTorch zip (torch.save, 1.6+)",
        ModelFileKind.PyTorchLegacy => "PyTorch legacy pickle (torch.save before 1.6)",
        ModelFileKind.Pickle => "a Python pickle",
        ModelFileKind.Onnx => "ONNX (protobuf)",
        _ => "unknown",
    };
}

/// <summary>What <c>scan</c> found: the file's kind, whether importing or loading it is safe, and why.</summary>
public sealed record ModelFileScan(string Path, ModelFileKind Kind, string KindDescription, bool SafeToLoad, string Verdict,
    IReadOnlyList<PickleGlobal> Globals, IReadOnlyList<string> Problems, IReadOnlyList<string> Tensors)
{
    /// <summary>Each reason the file is refused, with its severity; empty for a safe file and for one of an unknown format.</summary>
    public IReadOnlyList<ScanFinding> Findings { get; init; } = [];

    /// <summary>The worst finding's severity, or null when there is none.</summary>
    public ScanSeverity? Severity => Findings.Count == 0 ? null : Findings.Max(f => f.Severity);

    /// <summary>
    /// Whether the scan fails a gate at <paramref name="threshold"/>: the file is refused and its worst finding is at least that severe.
    /// A refused file without findings fails at every threshold; a safe file or one of an unknown format never does.
    /// </summary>
    public bool FailsAt(ScanSeverity threshold) => !SafeToLoad && Kind != ModelFileKind.Unknown && (Severity ?? ScanSeverity.Critical) >= threshold;
}

/// <summary>Reports what a model file is and whether it can be loaded without executing anything, listing every global a pickle references.</summary>
public static class ModelFileScanner
{
    public static ModelFileScan Scan(string path, PyTorchArchiveLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            var isPackage = File.Exists(System.IO.Path.Combine(path, ModelPackage.ManifestFile));
            return new ModelFileScan(path, isPackage ? ModelFileKind.SecureMnistPackage : ModelFileKind.Unknown,
                isPackage ? ModelFileKinds.Describe(ModelFileKind.SecureMnistPackage) : "a folder that is not a model package", isPackage,
                isPackage ? "no code in it; load only through verify (signature, weights digest, shapes)" : "not a model package", [], [], []);
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found", path);
        using var stream = File.OpenRead(path);
        var kind = ModelFileKinds.Sniff(stream);
        stream.Position = 0;
        return kind switch
        {
            ModelFileKind.Safetensors => ScanSafetensors(path, stream),
            ModelFileKind.PyTorchZip => ScanPyTorchZip(path, stream, limits),
            ModelFileKind.PyTorchLegacy or ModelFileKind.Pickle => ScanPickle(path, stream, kind),
            ModelFileKind.Onnx => ScanOnnx(path, stream),
            _ => new ModelFileScan(path, kind, ModelFileKinds.Describe(kind), false, "not a model format this tool knows; do not load it", [], [], []),
        };
    }

    private static ModelFileScan ScanSafetensors(string path, FileStream stream)
    {
        const long limit = ModelPackage.MaxWeightsBytes;
        if (stream.Length > limit) return Unsafe(path, ModelFileKind.Safetensors, [$"{stream.Length} bytes, over the {limit} byte limit"]);
        try
        {
            var file = Safetensors.Parse(File.ReadAllBytes(path));
            var tensors = file.Entries.Select(e => $"{e.Name} {e.DType} [{string.Join(",", e.Shape)}]").ToList();
            return new ModelFileScan(path, ModelFileKind.Safetensors, ModelFileKinds.Describe(ModelFileKind.Safetensors), true,
                "data only (no code): safe to load; trust still needs a signature", [], [], tensors);
        }
        catch (SafetensorsException e)
        {
            return Unsafe(path, ModelFileKind.Safetensors, [e.Message]);
        }
    }

    private static ModelFileScan ScanPyTorchZip(string path, FileStream stream, PyTorchArchiveLimits? limits)
    {
        try
        {
            var pickle = PyTorchArchive.Scan(stream, limits);
            if (pickle.Problems.Count > 0) return Refused(path, ModelFileKind.PyTorchZip, pickle.Problems, FindingsOf(pickle), pickle.Globals);
            // The structure-only scan passed; a full restricted read also checks storages, shapes and the state_dict layout.
            var stateDict = PyTorchArchive.ReadStateDict(path, limits);
            var tensors = stateDict.Tensors.Select(t => $"{t.Name} {t.StorageType} [{string.Join(",", t.Shape)}]").ToList();
            return new ModelFileScan(path, ModelFileKind.PyTorchZip, ModelFileKinds.Describe(ModelFileKind.PyTorchZip), true,
                "only allowlisted globals and opcodes: safe to import with ./securemnist import", pickle.Globals, [], tensors);
        }
        catch (Exception e) when (e is PyTorchFormatException or UnsafePickleException)
        {
            return Unsafe(path, ModelFileKind.PyTorchZip, [e.Message]);
        }
    }

    private static ModelFileScan ScanOnnx(string path, FileStream stream)
    {
        var limits = new OnnxLimits();
        if (stream.Length > limits.MaxFileBytes) return Unsafe(path, ModelFileKind.Onnx, [$"{stream.Length} bytes, over the {limits.MaxFileBytes} byte limit"]);
        try
        {
            var model = OnnxModelFile.Read(path, limits);
            var tensors = model.Initializers.Select(t => $"{t.Name} type {t.DataType} [{string.Join(",", t.Dims)}]{(t.ExternalLocation is { } l ? $" (external data: {l})" : "")}").ToList();
            var operators = string.Join(", ", model.Operators.Select(o => o.Domain.Length == 0 ? o.OpType : $"{o.Domain}.{o.OpType}"));
            var findings = model.Findings();
            if (findings.Count > 0) return Unsafe(path, ModelFileKind.Onnx, findings.Select(f => f.Message).ToList()) with { Tensors = tensors, Findings = findings };
            var external = model.Initializers.Count(t => t.ExternalLocation is not null);
            return new ModelFileScan(path, ModelFileKind.Onnx, ModelFileKinds.Describe(ModelFileKind.Onnx), true,
                $"no code, standard operators only ({operators}); opsets {string.Join(", ", model.Opsets.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)} {o.Version}"))}" +
                (external > 0 ? $"; {external} initializer(s) read data from files beside it" : ""), [], [], tensors);
        }
        catch (OnnxFormatException e)
        {
            return Unsafe(path, ModelFileKind.Onnx, [e.Message]);
        }
    }

    private static ModelFileScan ScanPickle(string path, FileStream stream, ModelFileKind kind)
    {
        const int limit = 16 << 20;
        if (stream.Length > limit) return Unsafe(path, kind, [$"{stream.Length} bytes, over the {limit} byte limit for a scan"]);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        // A legacy file is several pickles in a row (magic, protocol, system info, the object); scan them all.
        var pickle = PyTorchArchive.ScanPickles(bytes, maxPickles: 5);
        var format = kind == ModelFileKind.PyTorchLegacy ? "legacy PyTorch format: not imported; re-save with PyTorch 1.6 or newer" : "a bare pickle: not a format this tool imports";
        var findings = FindingsOf(pickle);
        // Refused for its format alone: low, when the scan found nothing else.
        if (findings.Count == 0) findings.Add(new ScanFinding(ScanSeverity.Low, format));
        return Refused(path, kind, [.. pickle.Problems, format], findings, pickle.Globals);
    }

    /// <summary>
    /// The findings of a pickle scan. Each disallowed global is a finding of its own severity (<see cref="ScanSeverities.OfGlobal"/>); every
    /// other refusal is high, and so is a scan that stopped early (on a limit or a malformed opcode): what it did not read is unknown, and a
    /// medium global seen before the stop must not rate a file whose rest may run code.
    /// </summary>
    private static List<ScanFinding> FindingsOf(PickleScan pickle)
    {
        var findings = pickle.Globals.Where(g => !g.Allowed)
            .Select(g => new ScanFinding(ScanSeverities.OfGlobal(g.Module, g.Name), $"{g.FullName} at pickle byte {g.Offset} is not allowlisted") { Global = g })
            .ToList();
        findings.AddRange(pickle.OtherRefusals.Select(p => new ScanFinding(ScanSeverity.High, p)));
        if (pickle.StoppedBy is { } stop) findings.Add(new ScanFinding(ScanSeverity.High, $"the scan stopped early, so the rest of the pickle was not read: {stop}"));
        return findings;
    }

    /// <summary>A refused file that is not a pickle scan's (size, structure, format errors): every problem is high, since the file could not be shown safe.</summary>
    private static ModelFileScan Unsafe(string path, ModelFileKind kind, IReadOnlyList<string> problems) =>
        Refused(path, kind, problems, problems.Select(p => new ScanFinding(ScanSeverity.High, p)).ToList(), []);

    private static ModelFileScan Refused(string path, ModelFileKind kind, IReadOnlyList<string> problems, IReadOnlyList<ScanFinding> findings, IReadOnlyList<PickleGlobal> globals) =>
        new(path, kind, ModelFileKinds.Describe(kind), false, "refused: " + problems[0], globals, problems, []) { Findings = findings };
}
