using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SecureMnist.IO;

namespace SecureMnist.Audit;

/// <summary>
/// The line format of the hash-chained audit log: <c>{"seq":N,"prev":H,"record":{...},"hash":H'}</c> with
/// H' = SHA-256(<c>"{seq}\n{prev}\n"</c> followed by the record's JSON bytes exactly as written), so each line
/// commits to every line before it. The first record of a log has prev = 64 zeros.
/// </summary>
public static class AuditChain
{
    public static readonly string Genesis = new('0', 64);

    /// <summary>Longest line accepted when reading a log; a decision record is a few hundred bytes.</summary>
    public const int MaxLineBytes = 16 << 10;

    public static string Hash(long sequence, string previous, ReadOnlySpan<byte> recordJson)
    {
        var prefix = Encoding.UTF8.GetBytes($"{sequence}\n{previous}\n");
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(prefix);
        sha.AppendData(recordJson);
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Serialises a record and chains it after <paramref name="previous"/>; returns the line (with newline) and its hash.</summary>
    public static (byte[] Line, string Hash) Line(long sequence, string previous, AuditRecord record)
    {
        var recordJson = JsonSerializer.SerializeToUtf8Bytes(record, Compact);
        var hash = Hash(sequence, previous, recordJson);
        var head = Encoding.UTF8.GetBytes($"{{\"seq\":{sequence},\"prev\":\"{previous}\",\"record\":");
        var tail = Encoding.UTF8.GetBytes($",\"hash\":\"{hash}\"}}\n");
        return ([.. head, .. recordJson, .. tail], hash);
    }

    internal static readonly JsonSerializerOptions Compact = new(JsonFormat.Documents) { WriteIndented = false };
}
