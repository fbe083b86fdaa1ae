using System.Text;
using System.Text.Json;
using NSec.Cryptography;
using SecureMnist.Security;

namespace SecureMnist.Audit;

/// <summary>
/// A signed statement "the audit chain held <see cref="Records"/> records ending in <see cref="Head"/> at <see cref="Time"/>".
/// Kept outside the log (copied off the machine), it catches even a consistent rewrite of the whole log.
/// </summary>
public sealed record AuditCheckpoint(long Records, string Head, DateTimeOffset Time, string KeyId, string Signature)
{
    public const string CheckpointsFile = "checkpoints.jsonl";

    private static byte[] Message(long records, string head, DateTimeOffset time) =>
        Encoding.UTF8.GetBytes($"securemnist-audit-checkpoint/v1\n{records}\n{head}\n{time.UtcDateTime:O}");

    internal static AuditCheckpoint Create(long records, string head, SigningKey key)
    {
        var time = DateTimeOffset.UtcNow;
        return new AuditCheckpoint(records, head, time, key.Id, Convert.ToBase64String(key.Sign(Message(records, head, time))));
    }

    /// <summary>True when the signature is by <paramref name="key"/> over this checkpoint's fields.</summary>
    public bool IsSignedBy(TrustedPublicKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var signature = new byte[64];
        if (!Convert.TryFromBase64String(Signature, signature, out var length) || length != 64) return false;
        return KeyId == key.Id && SignatureAlgorithm.Ed25519.Verify(key.Key, Message(Records, Head, Time), signature);
    }

    /// <summary>Reads a checkpoints file (one JSON checkpoint per line).</summary>
    public static IReadOnlyList<AuditCheckpoint> ReadAll(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint file {path} not found", path);
        var result = new List<AuditCheckpoint>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Length == 0) continue;
            if (line.Length > AuditChain.MaxLineBytes) throw new InvalidDataException($"{path} line {number}: over {AuditChain.MaxLineBytes} bytes");
            try
            {
                result.Add(JsonSerializer.Deserialize<AuditCheckpoint>(line, AuditChain.Compact) ?? throw new InvalidDataException($"{path} line {number}: empty"));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path} line {number}: not a checkpoint: {e.Message}");
            }
        }
        return result;
    }
}
