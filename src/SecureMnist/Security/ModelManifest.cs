using System.Text.Json;
using System.Text.Json.Serialization;
using SecureMnist.Training;

namespace SecureMnist.Security;

public sealed record WeightsInfo(string File, string Sha256, long Bytes);

public sealed record TensorInfo(string Name, string DType, long[] Shape);

public sealed record ModelMetrics(double TestAccuracy, double TestLoss, int TestImages);

/// <summary>Where imported weights came from: the file's digest and format, and every global its pickle referenced.</summary>
public sealed record ImportSource(string File, string Sha256, string Format, IReadOnlyList<string> PickleGlobals);

/// <summary>What a package claims about its model. The signature covers these exact bytes.</summary>
public sealed record ModelManifest(
    string Format,
    string Architecture,
    long ParameterCount,
    WeightsInfo Weights,
    IReadOnlyList<TensorInfo> Tensors,
    DateTimeOffset CreatedUtc,
    string CodeVersion,
    string? Dataset,
    IReadOnlyDictionary<string, string>? DatasetDigests,
    RunRecord? Training,
    string? TrainingRecordSha256,
    ModelMetrics? Metrics,
    string? SignerKeyId,
    ImportSource? ImportedFrom = null,
    SealInfo? Sealed = null,
    Modeling.ArchitectureSpec? Spec = null)
{
    public const string CurrentFormat = "securemnist-package/1";
}

/// <summary>The detached signature of a manifest.</summary>
public sealed record SignatureEnvelope(string Algorithm, string KeyId, string Signature);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ModelManifest))]
[JsonSerializable(typeof(SignatureEnvelope))]
[JsonSerializable(typeof(RunRecord))]
public sealed partial class SecurityJsonContext : JsonSerializerContext;

/// <summary>A package that is not trusted, with the reason.</summary>
public sealed class ModelPackageException(string message) : Exception(message);

internal static class ManifestJson
{
    public static byte[] Serialize(ModelManifest manifest) => JsonSerializer.SerializeToUtf8Bytes(manifest, SecurityJsonContext.Default.ModelManifest);

    public static byte[] Serialize(SignatureEnvelope envelope) => JsonSerializer.SerializeToUtf8Bytes(envelope, SecurityJsonContext.Default.SignatureEnvelope);

    public static ModelManifest ParseManifest(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return JsonSerializer.Deserialize(bytes, SecurityJsonContext.Default.ModelManifest)
                ?? throw new ModelPackageException("manifest is empty");
        }
        catch (JsonException e)
        {
            throw new ModelPackageException($"manifest is not valid: {e.Message}");
        }
    }

    /// <summary>Parses a signature file and insists it is in canonical form, so no byte of it can change unnoticed.</summary>
    public static SignatureEnvelope ParseSignature(ReadOnlySpan<byte> bytes)
    {
        SignatureEnvelope envelope;
        try
        {
            envelope = JsonSerializer.Deserialize(bytes, SecurityJsonContext.Default.SignatureEnvelope)
                ?? throw new ModelPackageException("signature file is empty");
        }
        catch (JsonException e)
        {
            throw new ModelPackageException($"signature file is not valid: {e.Message}");
        }
        if (!bytes.SequenceEqual(Serialize(envelope)))
            throw new ModelPackageException("signature file is not in canonical form (it was edited)");
        return envelope;
    }
}
