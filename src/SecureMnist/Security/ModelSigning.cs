using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecureMnist.Security;

/// <summary>The outcome of checking a model-signing signature: trusted or not, why, and which files it covers.</summary>
public sealed record ModelSigningVerification(bool Trusted, string Reason, string? RootDigest, IReadOnlyList<string> Files);

/// <summary>
/// Signatures in the OpenSSF model-signing v1.0 layout (what sigstore/model-transparency's "key" method writes):
/// a Sigstore bundle (v0.3 JSON) holding a DSSE envelope whose payload is an in-toto Statement v1 with predicateType
/// https://model_signing/signature/v1.0, one SHA-256 resource per file sorted by name, and as the subject digest the
/// SHA-256 of all resource digests in that order; ECDSA P-256 with SHA-256 over the DSSE pre-authentication encoding.
/// </summary>
public static class ModelSigning
{
    public const string SignatureFile = "model.sig";
    public const string BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";
    public const string PayloadType = "application/vnd.in-toto+json";
    public const string StatementType = "https://in-toto.io/Statement/v1";
    public const string PredicateType = "https://model_signing/signature/v1.0";
    private const long MaxBundleBytes = 16 << 20;

    /// <summary>Creates a P-256 key pair: PKCS#8 private key (owner-only) and SubjectPublicKeyInfo public key beside it (.pub).</summary>
    public static (string PrivatePath, string PublicPath) GenerateKey(string privatePath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(privatePath);
        var publicPath = Path.ChangeExtension(privatePath, ".pub");
        if (File.Exists(privatePath) || File.Exists(publicPath))
            throw new ModelPackageException($"{privatePath} or {publicPath} already exists; refusing to overwrite a key");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(privatePath))!);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(privatePath, options)) stream.Write(Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
        IO.AtomicFile.WriteAllText(publicPath, key.ExportSubjectPublicKeyInfoPem() + "\n");
        return (privatePath, publicPath);
    }

    /// <summary>Writes model.sig into the package folder, covering every other file in it.</summary>
    public static string Sign(string directory, string privateKeyPath)
    {
        using var key = LoadPrivateKey(privateKeyPath);
        var resources = Resources(directory);
        var payload = Encoding.UTF8.GetBytes(Statement(Path.GetFileName(Path.GetFullPath(directory).TrimEnd('/')), resources).ToJsonString(JsonOptions(indented: false)));
        var signature = key.SignData(PreAuthenticationEncoding(payload), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        var bundle = new JsonObject
        {
            ["mediaType"] = BundleMediaType,
            ["verificationMaterial"] = new JsonObject
            {
                ["publicKey"] = new JsonObject { ["hint"] = KeyHint(key.ExportSubjectPublicKeyInfoPem()) },
                ["tlogEntries"] = new JsonArray(),
            },
            ["dsseEnvelope"] = new JsonObject
            {
                ["payload"] = Convert.ToBase64String(payload),
                ["payloadType"] = PayloadType,
                ["signatures"] = new JsonArray(new JsonObject { ["sig"] = Convert.ToBase64String(signature) }),
            },
        };
        var path = Path.Combine(directory, SignatureFile);
        IO.AtomicFile.WriteAllText(path, bundle.ToJsonString(JsonOptions(indented: true)));
        return path;
    }

    /// <summary>Checks model.sig against a P-256 public key and the folder's files. Never throws for an untrusted package.</summary>
    public static ModelSigningVerification Verify(string directory, string publicKeyPath)
    {
        try
        {
            return VerifyCore(directory, publicKeyPath);
        }
        catch (Exception e) when (e is ModelPackageException or JsonException or FormatException or CryptographicException or InvalidOperationException or IOException)
        {
            return new ModelSigningVerification(false, e.Message, null, []);
        }
    }

    private static ModelSigningVerification VerifyCore(string directory, string publicKeyPath)
    {
        var path = Path.Combine(directory, SignatureFile);
        if (!File.Exists(path)) throw new ModelPackageException($"{SignatureFile} is missing; sign with ./securemnist sign --format model-signing");
        if (new FileInfo(path).Length > MaxBundleBytes) throw new ModelPackageException($"{SignatureFile} is over {MaxBundleBytes} bytes");
        var bundle = JsonNode.Parse(File.ReadAllBytes(path)) as JsonObject ?? throw new ModelPackageException("the bundle is not a JSON object");
        if ((string?)bundle["mediaType"] != BundleMediaType) throw new ModelPackageException($"bundle media type is '{(string?)bundle["mediaType"]}', expected {BundleMediaType}");

        using var key = LoadPublicKey(publicKeyPath);
        var hint = (string?)bundle["verificationMaterial"]?["publicKey"]?["hint"];
        if (hint is not null && hint != KeyHint(key.ExportSubjectPublicKeyInfoPem()))
            throw new ModelPackageException("the bundle names another public key (key hint differs)");
        var envelope = bundle["dsseEnvelope"] ?? throw new ModelPackageException("the bundle has no DSSE envelope");
        if ((string?)envelope["payloadType"] != PayloadType) throw new ModelPackageException($"DSSE payload type is '{(string?)envelope["payloadType"]}', expected {PayloadType}");
        var signatures = envelope["signatures"] as JsonArray;
        if (signatures is not { Count: 1 }) throw new ModelPackageException("the envelope must hold exactly one signature");
        var payload = Convert.FromBase64String((string?)envelope["payload"] ?? throw new ModelPackageException("the envelope has no payload"));
        var signature = Convert.FromBase64String((string?)signatures[0]!["sig"] ?? throw new ModelPackageException("the signature is empty"));
        if (!key.VerifyData(PreAuthenticationEncoding(payload), signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence))
            throw new ModelPackageException("the signature does not verify: the statement was changed or another key signed it");

        // Only now is the payload trusted enough to read.
        var statement = JsonNode.Parse(payload) as JsonObject ?? throw new ModelPackageException("the statement is not a JSON object");
        if ((string?)statement["_type"] != StatementType) throw new ModelPackageException($"statement type is '{(string?)statement["_type"]}', expected {StatementType}");
        if ((string?)statement["predicateType"] != PredicateType) throw new ModelPackageException($"predicate type is '{(string?)statement["predicateType"]}', expected {PredicateType}");
        if (statement["subject"] is not JsonArray { Count: 1 } subjects) throw new ModelPackageException("the statement must have exactly one subject");
        var signedResources = (statement["predicate"]?["resources"] as JsonArray ?? throw new ModelPackageException("the predicate lists no resources"))
            .Select(r => (Name: (string?)r?["name"] ?? "", Algorithm: (string?)r?["algorithm"] ?? "", Digest: (string?)r?["digest"] ?? ""))
            .ToList();
        if (signedResources.Any(r => r.Algorithm != "sha256")) throw new ModelPackageException("only sha256 resources are accepted");
        var root = RootDigest(signedResources.Select(r => r.Digest));
        if ((string?)subjects[0]!["digest"]?["sha256"] != root) throw new ModelPackageException("the subject digest does not match the resources (inconsistent statement)");

        var actual = Resources(directory);
        var problems = new List<string>();
        foreach (var missing in signedResources.Select(r => r.Name).Except(actual.Select(a => a.Name))) problems.Add($"{missing} is missing");
        foreach (var extra in actual.Select(a => a.Name).Except(signedResources.Select(r => r.Name))) problems.Add($"{extra} is not covered by the signature");
        foreach (var changed in actual.Join(signedResources, a => a.Name, r => r.Name, (a, r) => (a.Name, Same: a.Digest == r.Digest)).Where(p => !p.Same))
            problems.Add($"{changed.Name} changed after signing");
        if (problems.Count > 0) throw new ModelPackageException(string.Join("; ", problems));
        return new ModelSigningVerification(true, $"model-signing v1.0 signature verified; {actual.Count} files match", root, actual.Select(a => a.Name).ToList());
    }

    private static JsonSerializerOptions JsonOptions(bool indented) =>
        new() { WriteIndented = indented, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static JsonObject Statement(string modelName, IReadOnlyList<(string Name, string Digest)> resources) => new()
    {
        ["_type"] = StatementType,
        ["subject"] = new JsonArray(new JsonObject
        {
            ["name"] = modelName,
            ["digest"] = new JsonObject { ["sha256"] = RootDigest(resources.Select(r => r.Digest)) },
        }),
        ["predicateType"] = PredicateType,
        ["predicate"] = new JsonObject
        {
            ["serialization"] = new JsonObject
            {
                ["method"] = "files",
                ["hash_type"] = "sha256",
                ["allow_symlinks"] = false,
                ["ignore_paths"] = new JsonArray(SignatureFile),
            },
            ["resources"] = new JsonArray(resources.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name,
                ["algorithm"] = "sha256",
                ["digest"] = r.Digest,
            }).ToArray()),
        },
    };

    /// <summary>Every regular file under the folder except model.sig, by '/'-separated relative name, sorted; symlinks are refused.</summary>
    private static List<(string Name, string Digest)> Resources(string directory)
    {
        if (!Directory.Exists(directory)) throw new ModelPackageException($"{directory} not found");
        var resources = new List<(string Name, string Digest)>();
        foreach (var entry in new DirectoryInfo(directory).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
        {
            if (entry.LinkTarget is not null) throw new ModelPackageException($"{entry.FullName} is a symbolic link; model-signing with allow_symlinks=false refuses it");
            if (entry is not FileInfo file) continue;
            var name = Path.GetRelativePath(directory, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (name == SignatureFile) continue;
            using var stream = file.OpenRead();
            resources.Add((name, Convert.ToHexStringLower(SHA256.HashData(stream))));
        }
        resources.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return resources;
    }

    private static string RootDigest(IEnumerable<string> digests)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var digest in digests) hash.AppendData(Convert.FromHexString(digest));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>DSSE v1 PAE: "DSSEv1" SP len(type) SP type SP len(body) SP body.</summary>
    internal static byte[] PreAuthenticationEncoding(byte[] payload) =>
        [.. Encoding.UTF8.GetBytes($"DSSEv1 {PayloadType.Length} {PayloadType} {payload.Length} "), .. payload];

    /// <summary>SHA-256 of the public key's PEM as Python's cryptography writes it (with its final newline), like the reference tool.</summary>
    private static string KeyHint(string publicKeyPem) => Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(publicKeyPem.TrimEnd('\n') + "\n")));

    private static ECDsa LoadPrivateKey(string path) => LoadKey(path, "private",
        $"EC private key {path} not found; create one with: ./securemnist keys generate --algorithm p256 --out {path}");

    private static ECDsa LoadPublicKey(string path) => LoadKey(path, "public", $"EC public key {path} not found");

    private static ECDsa LoadKey(string path, string kind, string missing)
    {
        if (!File.Exists(path)) throw new ModelPackageException(missing);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(path));
            RequireP256(key, path);
            return key;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new ModelPackageException($"{path} is not an EC P-256 {kind} key in PEM form ({e.Message})");
        }
    }

    private static void RequireP256(ECDsa key, string path)
    {
        if (key.KeySize != 256) throw new ModelPackageException($"{path} is a {key.KeySize}-bit EC key; model-signing here uses P-256");
    }
}
