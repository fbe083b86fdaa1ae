using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace SecureMnist.Security;

/// <summary>An Ed25519 public key and its short id (first 16 hex digits of SHA-256 of the raw key).</summary>
public sealed class TrustedPublicKey
{
    private TrustedPublicKey(PublicKey key)
    {
        Key = key;
        Id = KeyIdOf(key);
    }

    internal PublicKey Key { get; }
    public string Id { get; }

    public static TrustedPublicKey FromFile(string path)
    {
        if (!File.Exists(path)) throw new ModelPackageException($"public key {path} not found; create keys with: ./securemnist keys generate");
        var text = File.ReadAllBytes(path);
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, text, KeyBlobFormat.PkixPublicKeyText, out var key) || key is null)
            throw new ModelPackageException($"{path} is not an Ed25519 public key in PEM (SubjectPublicKeyInfo) form");
        return new TrustedPublicKey(key);
    }

    internal static TrustedPublicKey From(PublicKey key) => new(key);

    internal static string KeyIdOf(PublicKey key) =>
        Convert.ToHexStringLower(SHA256.HashData(key.Export(KeyBlobFormat.RawPublicKey)))[..16];

    public string ExportPem() => Encoding.ASCII.GetString(Key.Export(KeyBlobFormat.PkixPublicKeyText));
}

/// <summary>An Ed25519 private key used to sign model packages. The key material never leaves this type except to its PEM file.</summary>
public sealed class SigningKey : IDisposable
{
    private readonly Key key;

    private SigningKey(Key key)
    {
        this.key = key;
        PublicKey = TrustedPublicKey.From(key.PublicKey);
    }

    public TrustedPublicKey PublicKey { get; }
    public string Id => PublicKey.Id;

    public static SigningKey Generate() =>
        new(Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    public static SigningKey FromFile(string path)
    {
        if (!File.Exists(path)) throw new ModelPackageException($"private key {path} not found; create one with: ./securemnist keys generate");
        var text = File.ReadAllBytes(path);
        try
        {
            if (!Key.TryImport(SignatureAlgorithm.Ed25519, text, KeyBlobFormat.PkixPrivateKeyText, out var key,
                    new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }) || key is null)
                throw new ModelPackageException($"{path} is not an Ed25519 private key in PEM (PKCS#8) form");
            return new SigningKey(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(text);
        }
    }

    /// <summary>Writes the private key (owner-only permissions) and the public key beside it; refuses to overwrite.</summary>
    public (string PrivatePath, string PublicPath) Save(string privatePath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(privatePath);
        var publicPath = Path.ChangeExtension(privatePath, ".pub");
        if (File.Exists(privatePath) || File.Exists(publicPath))
            throw new ModelPackageException($"{privatePath} or {publicPath} already exists; refusing to overwrite a key");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(privatePath))!);
        var blob = key.Export(KeyBlobFormat.PkixPrivateKeyText);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var stream = new FileStream(privatePath, options)) stream.Write(blob);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(blob);
        }
        IO.AtomicFile.WriteAllText(publicPath, PublicKey.ExportPem());
        return (privatePath, publicPath);
    }

    internal byte[] Sign(ReadOnlySpan<byte> message) => SignatureAlgorithm.Ed25519.Sign(key, message);

    public void Dispose() => key.Dispose();
}
