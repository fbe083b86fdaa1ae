using SecureMnist.Audit;
using SecureMnist.Data;
using SecureMnist.Interop;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Fuzzing;

/// <summary>
/// One parser of untrusted bytes, as a fuzzer drives it: <see cref="Run"/> feeds it one input and returns when the input
/// was accepted or cleanly refused (one of <see cref="Refusals"/>); any other exception, a crash, a hang or an unbounded
/// allocation is a finding.
/// </summary>
public sealed class FuzzTarget
{
    private readonly Action<byte[], string> parse;

    internal FuzzTarget(string name, string description, IReadOnlyList<Type> refusals, Action<byte[], string> parse)
    {
        Name = name;
        Description = description;
        Refusals = refusals;
        this.parse = parse;
    }

    public string Name { get; }
    public string Description { get; }

    /// <summary>The exception types that mean "refused with a clear message".</summary>
    public IReadOnlyList<Type> Refusals { get; }

    /// <summary>
    /// Parses <paramref name="input"/>; <paramref name="scratch"/> is a folder the target may overwrite (for readers that
    /// take a path). Returns the refusal's message, or null when the input was accepted.
    /// </summary>
    public string? Run(byte[] input, string scratch)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrEmpty(scratch);
        try
        {
            parse(input, scratch);
            return null;
        }
        catch (Exception e) when (Refusals.Any(type => type.IsInstanceOfType(e)))
        {
            return e.Message;
        }
    }
}

/// <summary>Every parser of untrusted bytes in the tool, by the name <c>./securemnist-fuzz</c> takes.</summary>
public static class FuzzTargets
{
    private static readonly Lazy<SigningKey> HarnessKey = new(SigningKey.Generate);

    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("pickle", "the restricted unpickler (scan mode, then load mode with the state_dict globals)",
            [typeof(UnsafePickleException)], (input, scratch) => PyTorchArchive.ReadPickle(input)),
        new("pytorch-zip", "the PyTorch zip reader and the model-file scanner (torch.save files)",
            [typeof(PyTorchFormatException), typeof(UnsafePickleException)], (input, scratch) =>
            {
                var path = Write(scratch, "model.pth", input);
                _ = ModelFileScanner.Scan(path);
                _ = PyTorchArchive.ReadStateDict(path);
            }),
        new("onnx", "the ONNX protobuf reader (operators, initializers, external data, subgraphs) and the model-file scanner",
            [typeof(OnnxFormatException)], (input, scratch) =>
            {
                _ = OnnxModelFile.Read(input, new OnnxLimits(MaxFileBytes: 1 << 20)).Problems();
                _ = ModelFileScanner.Scan(Write(scratch, "model.onnx", input));
            }),
        new("safetensors", "the safetensors reader, and every F32 tensor it accepts",
            [typeof(SafetensorsException)], (input, scratch) =>
            {
                var file = Safetensors.Parse(input);
                foreach (var entry in file.Entries.Where(e => e.DType == "F32")) _ = file.ReadFloat32(entry);
            }),
        new("idx", "the IDX reader: images (bytes and float32) or labels, as the header says",
            [typeof(IdxFormatException)], (input, scratch) => ReadIdx(() => new MemoryStream(input, writable: false))),
        new("idx-gz", "the IDX reader behind gzip",
            [typeof(IdxFormatException)], (input, scratch) => ReadIdx(() => IdxReader.Decompressed(new MemoryStream(input, writable: false), "input.gz"))),
        new("image", "the PNG/JPEG decoder behind /v1/predict",
            [typeof(InputRejectedException)], (input, scratch) => DigitImage.Decode(input, new ImageLimits())),
        new("json-body", "the JSON bodies of /v1/predict and (when the input has an \"items\" key) /v1/predict/batch",
            [typeof(InputRejectedException), typeof(BatchTooLargeException)], (input, scratch) =>
            {
                if (Mentions(input, "items")) _ = PredictRequest.BatchItems(input, maxItems: 64);
                else _ = PredictRequest.Pixels(input);
            }),
        new("oip-body", "the Open Inference Protocol v2 inference request of /v2/models/NAME/infer",
            [typeof(InputRejectedException), typeof(BatchTooLargeException)], (input, scratch) => _ = InferenceProtocol.Parse(input, maxItems: 32)),
        new("package-manifest", "a package's manifest (verified as a package, signed by the harness) or, without a \"weights\" key, its signature file",
            [typeof(ModelPackageException)], (input, scratch) =>
            {
                if (!Mentions(input, "weights"))
                {
                    _ = ManifestJson.ParseSignature(input);
                    return;
                }
                var package = Path.Combine(scratch, "package");
                Directory.CreateDirectory(package);
                File.WriteAllBytes(Path.Combine(package, ModelPackage.ManifestFile), input);
                File.WriteAllBytes(Path.Combine(package, ModelPackage.SignatureFile), ModelPackage.SignatureFor(input, HarnessKey.Value));
                var verification = ModelPackage.Verify(package, HarnessKey.Value.PublicKey);
                if (verification.Trusted) throw new InvalidOperationException("a package without weights verified");
                _ = ManifestJson.ParseManifest(input);
            }),
        new("audit-log", "the audit-log verifier or, without a \"prev\" key, the checkpoint reader",
            [typeof(InvalidDataException)], (input, scratch) =>
            {
                if (Mentions(input, "prev")) _ = AuditVerifier.Verify(Write(scratch, AuditLog.ActiveFile, input));
                else _ = AuditCheckpoint.ReadAll(Write(scratch, AuditCheckpoint.CheckpointsFile, input));
            }),
        new("api-keys", "the API-key file reader",
            [typeof(InvalidDataException)], (input, scratch) =>
            {
                var store = ApiKeyStore.Load(Write(scratch, "api-keys.json", input));
                _ = store.Authenticate("smk_fuzz");
            }),
    ];

    public static FuzzTarget Get(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"no fuzz target named '{name}'; the targets are {string.Join(", ", All.Select(t => t.Name))}", nameof(name));

    /// <summary>Reads an IDX stream as what its header says it is: labels (rank 1) or images (any other rank, refused unless 3).</summary>
    private static void ReadIdx(Func<Stream> open)
    {
        var head = new byte[4];
        try
        {
            using var peek = open();
            _ = peek.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException e)
        {
            // The harness's own peek at the header meets a corrupt gzip stream before the reader does; refuse it as the reader would.
            throw new IdxFormatException($"input: corrupt gzip stream: {e.Message}");
        }
        using var source = open();
        if (head[3] == 1) _ = IdxReader.ReadLabels(source, "input");
        else _ = IdxReader.ReadImagesAsFloat(source, "input");
    }

    private static bool Mentions(byte[] input, string name) => input.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes($"\"{name}\"")) >= 0;

    private static string Write(string scratch, string name, byte[] input)
    {
        Directory.CreateDirectory(scratch);
        var path = Path.Combine(scratch, name);
        File.WriteAllBytes(path, input);
        return path;
    }
}
