using System.Security.Cryptography;
using System.Text;

namespace SecureMnist.Security;

/// <summary>
/// A key-encryption key (KEK): 32 random bytes that wrap each sealed package's own data key. Kept in a file (base64, one line,
/// readable by its owner only) or in an environment variable (the same base64). Its id, the first 16 hex digits of a SHA-256
/// over a domain tag and the key, names it in manifests without revealing it.
/// </summary>
public sealed class KeyEncryptionKey : IDisposable
{
    public const int Size = 32;
    public const string EnvironmentVariable = "SECUREMNIST_KEK";
    private readonly byte[] key;

    private KeyEncryptionKey(byte[] key)
    {
        this.key = key;
        Id = Convert.ToHexStringLower(SHA256.HashData([.. "securemnist-kek/1\n"u8, .. key]))[..16];
    }

    public string Id { get; }

    internal ReadOnlySpan<byte> Bytes => key;

    public static KeyEncryptionKey Generate() => new(RandomNumberGenerator.GetBytes(Size));

    /// <summary>Parses the base64 text of a KEK; <paramref name="source"/> names where it came from in the error.</summary>
    public static KeyEncryptionKey Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(text.Trim());
        }
        catch (FormatException)
        {
            throw new ModelPackageException($"{source} is not a key-encryption key: expected {Size} bytes in base64 (make one with ./securemnist keys generate-kek)");
        }
        if (bytes.Length != Size)
        {
            CryptographicOperations.ZeroMemory(bytes);
            throw new ModelPackageException($"{source} is not a key-encryption key: it holds {bytes.Length} bytes, a KEK is {Size} (make one with ./securemnist keys generate-kek)");
        }
        return new KeyEncryptionKey(bytes);
    }

    /// <summary>A KEK from a file, or from an environment variable when <paramref name="location"/> is <c>env:NAME</c>.</summary>
    public static KeyEncryptionKey Load(string location)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(location);
        if (location.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = location[4..];
            var value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrWhiteSpace(value)) throw new ModelPackageException($"environment variable {name} is not set; it should hold the key-encryption key in base64");
            return Parse(value, $"environment variable {name}");
        }
        if (!File.Exists(location)) throw new ModelPackageException($"key-encryption key {location} not found; make one with ./securemnist keys generate-kek --out {location}");
        var info = new FileInfo(location);
        if (info.Length > 1024) throw new ModelPackageException($"{location} is {info.Length} bytes; a key-encryption key file is one line of base64");
        return Parse(File.ReadAllText(location), location);
    }

    /// <summary>The KEK in <see cref="EnvironmentVariable"/>, or null when that is not set.</summary>
    public static KeyEncryptionKey? FromEnvironment() =>
        string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(EnvironmentVariable)) ? null : Load($"env:{EnvironmentVariable}");

    /// <summary>The KEK at <paramref name="location"/> (a file or env:NAME) when given, else the one in <see cref="EnvironmentVariable"/>, else null.</summary>
    public static KeyEncryptionKey? LoadOrFromEnvironment(string? location) => string.IsNullOrWhiteSpace(location) ? FromEnvironment() : Load(location);

    /// <summary>Writes the KEK as one line of base64, readable by the owner only; never overwrites.</summary>
    public void Save(string path)
    {
        if (File.Exists(path)) throw new ModelPackageException($"{path} already exists; refusing to overwrite a key");
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder) Directory.CreateDirectory(folder);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var stream = new FileStream(path, options);
        stream.Write(Encoding.ASCII.GetBytes(Convert.ToBase64String(key) + "\n"));
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(key);
}

/// <summary>
/// How a sealed package's weights are encrypted: AES-256-GCM under a fresh data key, and that data key wrapped (AES-256-GCM) by
/// the KEK named by <paramref name="KekId"/>. The wrap's associated data binds the data key to the ciphertext's digest, and the
/// ciphertext's binds it to the KEK id; the plaintext's digest is checked after opening. Nonces and the wrapped key are base64.
/// </summary>
public sealed record SealInfo(string Algorithm, string KekId, string WrappedKey, string WrapNonce, string DataNonce, string PlaintextSha256, long PlaintextBytes)
{
    public const string CurrentAlgorithm = "AES-256-GCM, data key wrapped by AES-256-GCM";
}

/// <summary>Encrypts and opens the weights of a package. Opening checks the KEK before touching the ciphertext.</summary>
public static class WeightsSeal
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private static long openings;

    /// <summary>How many times weights have been decrypted in this process (tests check a refused package was never decrypted).</summary>
    internal static long Openings => Interlocked.Read(ref openings);

    /// <summary>The sealed file (ciphertext then the 16-byte tag) and the manifest's record of how to open it.</summary>
    public static (byte[] Sealed, SealInfo Info) Seal(ReadOnlySpan<byte> plaintext, KeyEncryptionKey kek)
    {
        ArgumentNullException.ThrowIfNull(kek);
        var dataKey = RandomNumberGenerator.GetBytes(KeyEncryptionKey.Size);
        try
        {
            var dataNonce = RandomNumberGenerator.GetBytes(NonceSize);
            var sealedBytes = new byte[plaintext.Length + TagSize];
            using (var aes = new AesGcm(dataKey, TagSize))
                aes.Encrypt(dataNonce, plaintext, sealedBytes.AsSpan(0, plaintext.Length), sealedBytes.AsSpan(plaintext.Length), DataContext(kek.Id));
            var wrapNonce = RandomNumberGenerator.GetBytes(NonceSize);
            var wrapped = new byte[KeyEncryptionKey.Size + TagSize];
            using (var aes = new AesGcm(kek.Bytes, TagSize))
                aes.Encrypt(wrapNonce, dataKey, wrapped.AsSpan(0, KeyEncryptionKey.Size), wrapped.AsSpan(KeyEncryptionKey.Size), WrapContext(ModelPackage.Sha256(sealedBytes)));
            return (sealedBytes, new SealInfo(SealInfo.CurrentAlgorithm, kek.Id, Convert.ToBase64String(wrapped), Convert.ToBase64String(wrapNonce),
                Convert.ToBase64String(dataNonce), ModelPackage.Sha256(plaintext), plaintext.Length));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>
    /// Decrypts sealed weights whose digest the caller has already checked against the signed manifest. Refuses a KEK other than
    /// the one named, and a wrapped key that does not open for this ciphertext, before decrypting anything.
    /// </summary>
    public static byte[] Open(ReadOnlySpan<byte> sealedBytes, SealInfo info, KeyEncryptionKey? kek)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.Algorithm != SealInfo.CurrentAlgorithm) throw new ModelPackageException($"sealing algorithm '{info.Algorithm}' is not supported (expected {SealInfo.CurrentAlgorithm})");
        if (kek is null)
            throw new ModelPackageException($"the weights are sealed (KEK id {info.KekId}); give the key-encryption key with --kek FILE, --kek env:NAME or ${KeyEncryptionKey.EnvironmentVariable}");
        if (kek.Id != info.KekId) throw new ModelPackageException($"the weights are sealed with KEK id {info.KekId}, and the key given is {kek.Id}; nothing was decrypted");
        var wrapped = Base64(info.WrappedKey, "wrapped key", KeyEncryptionKey.Size + TagSize);
        var wrapNonce = Base64(info.WrapNonce, "wrap nonce", NonceSize);
        var dataNonce = Base64(info.DataNonce, "data nonce", NonceSize);
        if (sealedBytes.Length < TagSize || sealedBytes.Length - TagSize != info.PlaintextBytes)
            throw new ModelPackageException($"the sealed weights are {sealedBytes.Length} bytes; {info.PlaintextBytes} bytes of weights seal to {info.PlaintextBytes + TagSize}");
        var dataKey = new byte[KeyEncryptionKey.Size];
        try
        {
            try
            {
                using var aes = new AesGcm(kek.Bytes, TagSize);
                aes.Decrypt(wrapNonce, wrapped.AsSpan(0, KeyEncryptionKey.Size), wrapped.AsSpan(KeyEncryptionKey.Size), dataKey, WrapContext(ModelPackage.Sha256(sealedBytes)));
            }
            catch (AuthenticationTagMismatchException)
            {
                throw new ModelPackageException("the wrapped data key does not open with this KEK for these sealed weights (it was swapped or altered); nothing was decrypted");
            }
            var plaintext = new byte[info.PlaintextBytes];
            try
            {
                Interlocked.Increment(ref openings);
                using var aes = new AesGcm(dataKey, TagSize);
                aes.Decrypt(dataNonce, sealedBytes[..^TagSize], sealedBytes[^TagSize..], plaintext, DataContext(kek.Id));
            }
            catch (AuthenticationTagMismatchException)
            {
                CryptographicOperations.ZeroMemory(plaintext);
                throw new ModelPackageException("the sealed weights fail authentication (altered after sealing)");
            }
            if (ModelPackage.Sha256(plaintext) != info.PlaintextSha256)
            {
                CryptographicOperations.ZeroMemory(plaintext);
                throw new ModelPackageException("the opened weights do not match the sealed digest");
            }
            return plaintext;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private static byte[] DataContext(string kekId) => Encoding.UTF8.GetBytes($"securemnist-sealed-weights/1\n{kekId}");

    private static byte[] WrapContext(string sealedSha256) => Encoding.UTF8.GetBytes($"securemnist-data-key/1\n{sealedSha256}");

    private static byte[] Base64(string text, string what, int length)
    {
        try
        {
            var bytes = Convert.FromBase64String(text);
            if (bytes.Length == length && Convert.ToBase64String(bytes) == text) return bytes;
        }
        catch (FormatException)
        {
        }
        throw new ModelPackageException($"the manifest's {what} is not {length} bytes of canonical base64");
    }
}
