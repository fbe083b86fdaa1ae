using System.Security.Cryptography;
using System.Text;
using SecureMnist.IO;

namespace SecureMnist.Serving;

/// <summary>What a key may do: <c>predict</c> calls the model; <c>admin</c> reads the audit state and reloads.</summary>
public static class ApiScopes
{
    public const string Predict = "predict";
    public const string Admin = "admin";
    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { Predict, Admin };
}

/// <summary>One API key as stored: only the SHA-256 of the secret is kept.</summary>
/// <param name="LabelOnly">Responses carry the label and decision only, no probabilities (limits model extraction).</param>
/// <param name="RequestsPerMinute">Token-bucket rate for this key.</param>
public sealed record ApiKeyEntry(string Id, string Sha256, IReadOnlyList<string> Scopes, bool LabelOnly = false, int RequestsPerMinute = 120);

public sealed record ApiKeyFile(IReadOnlyList<ApiKeyEntry> Keys);

/// <summary>
/// The service's API keys. Secrets are 256-bit random values shown once at creation; the store holds their SHA-256
/// (a fast hash is enough for high-entropy secrets) and lookups compare every entry in constant time.
/// </summary>
public sealed class ApiKeyStore
{
    public const string SecretPrefix = "smk_";
    private readonly IReadOnlyList<(ApiKeyEntry Entry, byte[] Hash)> entries;

    private ApiKeyStore(IReadOnlyList<ApiKeyEntry> keys) =>
        entries = keys.Select(k => (k, Convert.FromHexString(k.Sha256))).ToList();

    public IReadOnlyList<ApiKeyEntry> Keys => entries.Select(e => e.Entry).ToList();

    public static ApiKeyStore From(IReadOnlyList<ApiKeyEntry> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        foreach (var key in keys) Validate(key);
        var duplicate = keys.GroupBy(k => k.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidDataException($"API key id '{duplicate.Key}' appears twice");
        return new ApiKeyStore(keys);
    }

    public static ApiKeyStore Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"API key file {path} not found; create a key with: ./securemnist api-keys add --id NAME", path);
        return From(JsonFormat.Load<ApiKeyFile>(path, 1 << 20).Keys ?? []);
    }

    /// <summary>The entry whose secret this is, or null. Every entry is compared, in constant time, whatever matches.</summary>
    public ApiKeyEntry? Authenticate(string? presented)
    {
        if (string.IsNullOrEmpty(presented) || presented.Length > 256) return null;
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        ApiKeyEntry? found = null;
        foreach (var (entry, stored) in entries)
            if (CryptographicOperations.FixedTimeEquals(hash, stored)) found = entry;
        return found;
    }

    /// <summary>Adds a new key to the file (created if missing) and returns its secret, which is stored nowhere.</summary>
    public static string Add(string path, string id, IReadOnlyList<string> scopes, bool labelOnly, int requestsPerMinute)
    {
        var existing = File.Exists(path) ? Load(path).Keys : [];
        if (existing.Any(k => k.Id == id)) throw new InvalidDataException($"{path} already has a key '{id}'; pick another id or remove it first");
        var secret = SecretPrefix + Base64Url(RandomNumberGenerator.GetBytes(32));
        var entry = new ApiKeyEntry(id, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret))), scopes, labelOnly, requestsPerMinute);
        Validate(entry);
        JsonFormat.Save(path, new ApiKeyFile([.. existing, entry]));
        return secret;
    }

    private static void Validate(ApiKeyEntry key)
    {
        if (string.IsNullOrWhiteSpace(key.Id) || key.Id.Length > 64 || !key.Id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new InvalidDataException($"API key id '{key.Id}' must be 1-64 letters, digits, '-', '_' or '.'");
        if (key.Sha256 is not { Length: 64 } || !key.Sha256.All(char.IsAsciiHexDigit))
            throw new InvalidDataException($"API key '{key.Id}': sha256 must be 64 hex digits");
        if (key.Scopes is null || key.Scopes.Count == 0 || key.Scopes.Any(s => !ApiScopes.All.Contains(s)))
            throw new InvalidDataException($"API key '{key.Id}': scopes must be one or more of {string.Join(", ", ApiScopes.All)}");
        if (key.RequestsPerMinute is < 1 or > 1_000_000)
            throw new InvalidDataException($"API key '{key.Id}': requestsPerMinute must be 1 to 1,000,000");
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
