using System.Security.Cryptography;
using NSec.Cryptography;
using SecureMnist.IO;
using SecureMnist.Modeling;
using SecureMnist.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Security;

/// <summary>How far a package was trusted when it was loaded.</summary>
public enum PackageTrust
{
    /// <summary>Signature verified against a trusted key; weights match the signed digest.</summary>
    Signed,
    /// <summary>Loaded without a signature check because the caller explicitly allowed it.</summary>
    UnsignedAllowed,
}

/// <summary>
/// A model read from a package whose weights digest, safetensors structure and tensor shapes were checked. Whether its
/// signature was checked is in its type: <see cref="VerifiedModel"/> or <see cref="UnverifiedModel"/>. Analysis verbs
/// take either; the service takes only the first.
/// </summary>
public abstract class LoadedModel : IDisposable
{
    private protected LoadedModel(string directory, ModelManifest manifest, Module<Tensor, Tensor> network, string manifestSha256)
    {
        Directory = directory;
        Manifest = manifest;
        Network = network;
        ManifestSha256 = manifestSha256;
    }

    public string Directory { get; }
    public ModelManifest Manifest { get; }
    public Module<Tensor, Tensor> Network { get; }
    public abstract PackageTrust Trust { get; }
    /// <summary>SHA-256 of the manifest bytes: the model's identity (it pins the weights digest).</summary>
    public string ManifestSha256 { get; }

    public void Dispose()
    {
        Network.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// A model whose package's signature verified against a trusted key. Only <see cref="ModelPackage.Load"/> can create
/// one, so code that takes a VerifiedModel (the service) cannot be handed weights that skipped the signature check.
/// </summary>
public sealed class VerifiedModel : LoadedModel
{
    internal VerifiedModel(string directory, ModelManifest manifest, Module<Tensor, Tensor> network, string manifestSha256)
        : base(directory, manifest, network, manifestSha256)
    {
    }

    public override PackageTrust Trust => PackageTrust.Signed;
}

/// <summary>A model loaded with <c>--allow-unsigned</c>: integrity-checked, but nobody vouches for it.</summary>
public sealed class UnverifiedModel : LoadedModel
{
    internal UnverifiedModel(string directory, ModelManifest manifest, Module<Tensor, Tensor> network, string manifestSha256)
        : base(directory, manifest, network, manifestSha256)
    {
    }

    public override PackageTrust Trust => PackageTrust.UnsignedAllowed;
}

/// <summary>The outcome of verifying a package: trusted or not, and why.</summary>
public sealed record PackageVerification(bool Trusted, string Reason, ModelManifest? Manifest, string? SignerKeyId);

/// <summary>
/// A model package is a folder: weights.safetensors, manifest.json (architecture, tensor list,
/// weights SHA-256, run record, metrics) and signature.json (Ed25519 over the manifest bytes).
/// </summary>
public static class ModelPackage
{
    public const string WeightsFile = "weights.safetensors";
    public const string SealedWeightsFile = "weights.sealed";
    public const string OnnxFile = "model.onnx";
    public const string ManifestFile = "manifest.json";
    public const string SignatureFile = "signature.json";
    public const long MaxManifestBytes = 4 << 20;
    public const long MaxSignatureBytes = 4096;
    public const long MaxWeightsBytes = 1L << 30;

    /// <summary>Details recorded in the manifest besides the weights.</summary>
    public sealed record Provenance(string? Dataset, IReadOnlyDictionary<string, string>? DatasetDigests, RunRecord? Training, ModelMetrics? Metrics,
        ImportSource? ImportedFrom = null);

    /// <summary>
    /// Writes a package around an ONNX model (architecture <see cref="Architectures.Onnx"/>): the file's bytes as they are, in
    /// <see cref="OnnxFile"/>, digested and signed like any weights; the manifest lists its initializers. Refused, before anything is
    /// written, unless ONNX Runtime loads it as a classifier of 28x28 images from standard operators and weights inside the file.
    /// </summary>
    public static ModelManifest WriteOnnx(string directory, byte[] onnx, Provenance provenance, SigningKey? key)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentNullException.ThrowIfNull(provenance);
        using var network = new Interop.OnnxNetwork(onnx);
        var manifest = new ModelManifest(ModelManifest.CurrentFormat, Architectures.Onnx, network.ParameterCount, new WeightsInfo(OnnxFile, Sha256(onnx), onnx.LongLength),
            [.. network.Summary.Initializers.Select(t => new TensorInfo(t.Name, $"onnx:{t.DataType}", t.Dims))], DateTimeOffset.UtcNow, CodeVersion.Current(),
            provenance.Dataset, provenance.DatasetDigests, null, null, provenance.Metrics, key?.Id, provenance.ImportedFrom);
        return WriteFolder(directory, OnnxFile, onnx, manifest, key);
    }

    /// <summary>Writes a complete package (signed when a key is given). The folder appears whole or not at all.</summary>
    public static ModelManifest Write(string directory, string architecture, Module<Tensor, Tensor> network, Provenance provenance, SigningKey? key)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(provenance);
        var tensors = ModelWeights.Export(network);
        var weights = Safetensors.Serialize(tensors, new Dictionary<string, string> { ["format"] = "pt", ["architecture"] = architecture });
        var trainingBytes = provenance.Training is null ? null : System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(provenance.Training, SecurityJsonContext.Default.RunRecord);
        var manifest = new ModelManifest(
            ModelManifest.CurrentFormat,
            architecture,
            tensors.Sum(t => t.Shape.Aggregate(1L, (p, s) => p * s)),
            new WeightsInfo(WeightsFile, Sha256(weights), weights.LongLength),
            tensors.Select(t => new TensorInfo(t.Name, t.DType, t.Shape)).ToList(),
            DateTimeOffset.UtcNow,
            provenance.Training?.CodeVersion ?? CodeVersion.Current(),
            provenance.Dataset,
            provenance.DatasetDigests,
            provenance.Training,
            trainingBytes is null ? null : Sha256(trainingBytes),
            provenance.Metrics,
            key?.Id,
            provenance.ImportedFrom,
            Spec: (network as Modeling.SpecNetwork)?.Spec);

        return WriteFolder(directory, WeightsFile, weights, manifest, key);
    }

    /// <summary>The weights, the manifest and (with a key) its signature, written so the folder appears whole or not at all.</summary>
    private static ModelManifest WriteFolder(string directory, string weightsFile, byte[] weights, ModelManifest manifest, SigningKey? key)
    {
        AtomicDirectory.Write(directory, staging =>
        {
            AtomicFile.WriteAllBytes(Path.Combine(staging, weightsFile), weights);
            var manifestBytes = ManifestJson.Serialize(manifest);
            AtomicFile.WriteAllBytes(Path.Combine(staging, ManifestFile), manifestBytes);
            if (key is not null) AtomicFile.WriteAllBytes(Path.Combine(staging, SignatureFile), SignatureFor(manifestBytes, key));
        });
        return manifest;
    }

    /// <summary>Signs an existing package after checking that its weights still match its manifest.</summary>
    public static ModelManifest Sign(string directory, SigningKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var (manifestBytes, manifest) = ReadManifest(directory);
        CheckWeightsDigest(directory, manifest);
        if (manifest.SignerKeyId != key.Id)
        {
            manifest = manifest with { SignerKeyId = key.Id };
            manifestBytes = ManifestJson.Serialize(manifest);
        }
        var signature = SignatureFor(manifestBytes, key);
        AtomicFile.WriteAllBytes(Path.Combine(directory, ManifestFile), manifestBytes);
        AtomicFile.WriteAllBytes(Path.Combine(directory, SignatureFile), signature);
        return manifest;
    }

    /// <summary>
    /// Encrypts a trusted package's weights at rest (<see cref="WeightsSeal"/>) and signs the result: the new manifest names the
    /// sealed file's digest and the wrapped data key, so the signature covers both. Written to <paramref name="output"/> (the
    /// package's own folder when null), whole or not at all; the plaintext weights file is not part of the result.
    /// </summary>
    public static ModelManifest Seal(string directory, TrustedPublicKey trustedKey, SigningKey key, KeyEncryptionKey kek, string? output = null)
    {
        ArgumentNullException.ThrowIfNull(trustedKey);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(kek);
        if (Inspect(directory).Sealed is { } already) throw new ModelPackageException($"{directory} is already sealed (KEK id {already.KekId})");
        var (_, manifest, network) = LoadChecked(directory, trustedKey, kek: null);
        network.Dispose();
        var plaintext = CheckWeightsDigest(directory, manifest);
        try
        {
            var (sealedBytes, info) = WeightsSeal.Seal(plaintext, kek);
            var sealedManifest = manifest with { Weights = new WeightsInfo(SealedWeightsFile, Sha256(sealedBytes), sealedBytes.LongLength), Sealed = info, SignerKeyId = key.Id };
            var bytes = ManifestJson.Serialize(sealedManifest);
            AtomicDirectory.Write(output ?? directory, staging =>
            {
                AtomicFile.WriteAllBytes(Path.Combine(staging, SealedWeightsFile), sealedBytes);
                AtomicFile.WriteAllBytes(Path.Combine(staging, ManifestFile), bytes);
                AtomicFile.WriteAllBytes(Path.Combine(staging, SignatureFile), SignatureFor(bytes, key));
            });
            return sealedManifest;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>Every check that a load makes, without keeping the network. Never throws for an untrusted package.</summary>
    /// <param name="kek">For a sealed package: without it the signature and the sealed file's digest are checked, and the reason says
    /// the weights' structure was not; with it the weights are opened in memory and checked like any others.</param>
    public static PackageVerification Verify(string directory, TrustedPublicKey? trustedKey, KeyEncryptionKey? kek = null)
    {
        try
        {
            if (trustedKey is null) throw new ModelPackageException("no trusted public key given");
            if (kek is null && System.IO.Directory.Exists(directory) && File.Exists(Path.Combine(directory, ManifestFile)) && Inspect(directory).Sealed is not null)
            {
                var (bytes, _) = ReadManifestBytes(directory);
                CheckSignature(directory, bytes, trustedKey);
                var sealedManifest = ManifestJson.ParseManifest(bytes);
                CheckWeightsDigest(directory, sealedManifest);
                return new PackageVerification(true, $"signature by key {sealedManifest.SignerKeyId} verified; sealed weights SHA-256 {sealedManifest.Weights.Sha256} matches; weights sealed ({sealedManifest.Sealed!.Algorithm}, KEK id {sealedManifest.Sealed.KekId}): their structure and shapes are checked when opened with the KEK (--kek)", sealedManifest, sealedManifest.SignerKeyId);
            }
            using var model = Load(directory, trustedKey, kek);
            var opened = model.Manifest.Sealed is { } seal ? $"; sealed weights opened in memory with KEK {seal.KekId}" : "";
            return new PackageVerification(true, $"signature by key {model.Manifest.SignerKeyId} verified; weights SHA-256 {model.Manifest.Weights.Sha256} matches; {model.Manifest.Tensors.Count} tensors match architecture {model.Manifest.Architecture}{opened}", model.Manifest, model.Manifest.SignerKeyId);
        }
        catch (Exception e) when (e is ModelPackageException or SafetensorsException or IOException or UnauthorizedAccessException)
        {
            return new PackageVerification(false, e.Message, null, null);
        }
    }

    /// <summary>
    /// Verifies the signature against <paramref name="trustedKey"/>, then the weights digest, safetensors structure and
    /// tensor shapes, in that order, and only then creates tensors from the file.
    /// </summary>
    /// <param name="kek">The key-encryption key of a sealed package: its weights are opened in memory only, after the signature and
    /// the sealed file's digest are checked.</param>
    public static VerifiedModel Load(string directory, TrustedPublicKey trustedKey, KeyEncryptionKey? kek = null)
    {
        if (trustedKey is null) throw new ModelPackageException("no trusted public key given; pass --public-key, or --allow-unsigned to skip the signature check");
        var (manifestBytes, manifest, network) = LoadChecked(directory, trustedKey, kek);
        return new VerifiedModel(directory, manifest, network, Sha256(manifestBytes));
    }

    /// <summary>Every check of <see cref="Load"/> but the signature (<c>--allow-unsigned</c>); the type says so wherever the model goes.</summary>
    public static UnverifiedModel LoadUnsigned(string directory, KeyEncryptionKey? kek = null)
    {
        var (manifestBytes, manifest, network) = LoadChecked(directory, trustedKey: null, kek);
        return new UnverifiedModel(directory, manifest, network, Sha256(manifestBytes));
    }

    private static (byte[] ManifestBytes, ModelManifest Manifest, Module<Tensor, Tensor> Network) LoadChecked(string directory, TrustedPublicKey? trustedKey, KeyEncryptionKey? kek)
    {
        if (!System.IO.Directory.Exists(directory)) throw new ModelPackageException($"model package {directory} not found");
        var (manifestBytes, _) = ReadManifestBytes(directory);
        if (trustedKey is not null) CheckSignature(directory, manifestBytes, trustedKey);
        var manifest = ManifestJson.ParseManifest(manifestBytes);
        if (manifest.Format != ModelManifest.CurrentFormat) throw new ModelPackageException($"manifest format '{manifest.Format}' is not supported (expected {ModelManifest.CurrentFormat})");
        var weights = CheckWeightsDigest(directory, manifest);
        if (manifest.Sealed is { } seal) weights = WeightsSeal.Open(weights, seal, kek);
        try
        {
            return (manifestBytes, manifest, Build(manifest, weights));
        }
        finally
        {
            // Opened weights live in this array only: cleared once they are tensors.
            if (manifest.Sealed is not null) CryptographicOperations.ZeroMemory(weights);
        }
    }

    private static Module<Tensor, Tensor> Build(ModelManifest manifest, byte[] weights)
    {
        if (manifest.Architecture == Architectures.Onnx)
        {
            try
            {
                return new Interop.OnnxNetwork(weights);
            }
            catch (Interop.OnnxFormatException e)
            {
                throw new ModelPackageException(e.Message);
            }
        }
        var file = Safetensors.Parse(weights);
        var declared = manifest.Tensors.Select(t => $"{t.Name}:{t.DType}:{string.Join(",", t.Shape)}").Order(StringComparer.Ordinal);
        var present = file.Entries.Select(e => $"{e.Name}:{e.DType}:{string.Join(",", e.Shape)}").Order(StringComparer.Ordinal);
        if (!declared.SequenceEqual(present)) throw new ModelPackageException("tensors in the weights file differ from the manifest's list");

        Module<Tensor, Tensor> network;
        try
        {
            network = Architectures.Create(manifest.Architecture, manifest.Spec);
        }
        catch (Exception e) when (e is ArgumentException or ArchitectureSpecException)
        {
            throw new ModelPackageException(e.Message);
        }
        var problems = ModelWeights.Mismatches(network, file);
        if (problems.Count > 0)
        {
            network.Dispose();
            throw new ModelPackageException($"weights do not fit architecture {manifest.Architecture}: {string.Join("; ", problems)}");
        }
        ModelWeights.Load(network, file);
        network.eval();
        return network;
    }

    internal static byte[] SignatureFor(byte[] manifestBytes, SigningKey key) =>
        ManifestJson.Serialize(new SignatureEnvelope("Ed25519", key.Id, Convert.ToBase64String(key.Sign(manifestBytes))));

    private static void CheckSignature(string directory, byte[] manifestBytes, TrustedPublicKey trustedKey)
    {
        var path = Path.Combine(directory, SignatureFile);
        if (!File.Exists(path)) throw new ModelPackageException($"package is unsigned ({SignatureFile} missing); sign it with ./securemnist sign, or pass --allow-unsigned");
        var signatureBytes = ReadCapped(path, MaxSignatureBytes);
        var envelope = ManifestJson.ParseSignature(signatureBytes);
        if (envelope.Algorithm != "Ed25519") throw new ModelPackageException($"signature algorithm '{envelope.Algorithm}' is not accepted (Ed25519 only)");
        if (envelope.KeyId != trustedKey.Id) throw new ModelPackageException($"signed by key {envelope.KeyId}, which is not the trusted key {trustedKey.Id}");
        byte[] signature;
        try
        {
            signature = Convert.FromBase64String(envelope.Signature);
            // Base64 can carry ignored trailing bits; only the canonical encoding is accepted.
            if (Convert.ToBase64String(signature) != envelope.Signature) throw new FormatException();
        }
        catch (FormatException)
        {
            throw new ModelPackageException("signature is not canonical base64");
        }
        if (signature.Length != SignatureAlgorithm.Ed25519.SignatureSize || !SignatureAlgorithm.Ed25519.Verify(trustedKey.Key, manifestBytes, signature))
            throw new ModelPackageException($"signature does not verify: {ManifestFile} was changed after signing, or the signature is corrupt");
    }

    /// <summary>Reads the weights file the manifest names (plain or sealed, nothing else) and checks its digest: for sealed weights, before any decryption.</summary>
    private static byte[] CheckWeightsDigest(string directory, ModelManifest manifest)
    {
        var expected = manifest.Sealed is not null ? SealedWeightsFile : manifest.Architecture == Architectures.Onnx ? OnnxFile : WeightsFile;
        if (manifest.Weights.File != expected)
            throw new ModelPackageException($"manifest names weights file '{manifest.Weights.File}'; {(manifest.Sealed is null ? "packages keep weights" : "sealed packages keep weights")} in {expected}");
        var path = Path.Combine(directory, expected);
        if (!File.Exists(path)) throw new ModelPackageException($"{expected} is missing");
        var weights = ReadCapped(path, MaxWeightsBytes);
        var digest = Sha256(weights);
        if (weights.LongLength != manifest.Weights.Bytes || digest != manifest.Weights.Sha256)
            throw new ModelPackageException($"{expected} does not match the manifest: expected SHA-256 {manifest.Weights.Sha256} ({manifest.Weights.Bytes} bytes), found {digest} ({weights.LongLength} bytes){(manifest.Sealed is null ? "" : "; nothing was decrypted")}");
        return weights;
    }

    private static (byte[] Bytes, string Path) ReadManifestBytes(string directory)
    {
        var path = Path.Combine(directory, ManifestFile);
        if (!File.Exists(path)) throw new ModelPackageException($"{directory} is not a model package ({ManifestFile} missing)");
        return (ReadCapped(path, MaxManifestBytes), path);
    }

    private static (byte[] Bytes, ModelManifest Manifest) ReadManifest(string directory)
    {
        var (bytes, _) = ReadManifestBytes(directory);
        return (bytes, ManifestJson.ParseManifest(bytes));
    }

    public static ModelManifest Inspect(string directory) => ReadManifest(directory).Manifest;

    private static byte[] ReadCapped(string path, long limit)
    {
        var length = new FileInfo(path).Length;
        if (length > limit) throw new ModelPackageException($"{Path.GetFileName(path)} is {length} bytes, over the {limit} byte limit");
        return File.ReadAllBytes(path);
    }

    internal static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
