using System.Text;
using System.Text.Json;
using SecureMnist.Security;

namespace SecureMnist.Audit;

/// <summary>The verdict on an audit log: intact or not, and where the first problem is.</summary>
/// <param name="Records">Records read before the first problem (all of them when intact).</param>
/// <param name="FirstBadSequence">Sequence number of the first bad record, when it could be read.</param>
public sealed record AuditVerification(
    bool Intact, long Records, string Head, int Segments, int CheckpointsChecked,
    string? Problem, string? Location, long? FirstBadSequence);

public static class AuditVerifier
{
    /// <summary>
    /// Verifies a log file, or a log folder (rotated segments in order, then the active file), against the hash chain
    /// and, when given, signed checkpoints: every checkpoint must be signed by <paramref name="checkpointKey"/> and its
    /// head must be the chain's hash at that record count, which catches edits, deletions, insertions, reordering,
    /// truncation and whole-log rewrites.
    /// </summary>
    public static AuditVerification Verify(string path, IReadOnlyList<AuditCheckpoint>? checkpoints = null, TrustedPublicKey? checkpointKey = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        checkpoints ??= [];
        if (checkpoints.Count > 0 && checkpointKey is null) throw new ArgumentException("checkpoints need the service's public key to be checked");
        var segments = Segments(path);
        var expected = checkpoints.GroupBy(c => c.Records).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var checkpoint in checkpoints)
            if (!checkpoint.IsSignedBy(checkpointKey!))
                return new AuditVerification(false, 0, AuditChain.Genesis, segments.Count, 0,
                    $"checkpoint at {checkpoint.Records} records ({checkpoint.Time:O}) is not signed by key {checkpointKey!.Id}", null, null);

        long records = 0;
        var head = AuditChain.Genesis;
        var first = true;
        var matched = 0;
        AuditVerification Bad(string problem, string location, long? sequence) =>
            new(false, records, head, segments.Count, matched, problem, location, sequence);

        foreach (var segment in segments)
        {
            var lineNumber = 0;
            foreach (var (line, complete) in Lines(segment))
            {
                lineNumber++;
                var location = $"{segment} line {lineNumber}";
                if (!complete) return Bad("the last line is cut off (truncated write or truncation)", location, null);
                if (line.Length > AuditChain.MaxLineBytes) return Bad($"line longer than {AuditChain.MaxLineBytes} bytes", location, null);
                long sequence;
                string previous, stated, recordJson;
                try
                {
                    using var document = JsonDocument.Parse(line);
                    var root = document.RootElement;
                    sequence = root.GetProperty("seq").GetInt64();
                    previous = root.GetProperty("prev").GetString() ?? "";
                    stated = root.GetProperty("hash").GetString() ?? "";
                    recordJson = root.GetProperty("record").GetRawText();
                    if (JsonSerializer.Deserialize<AuditRecord>(recordJson, AuditChain.Compact) is null) throw new JsonException("empty record");
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    return Bad($"not an audit record: {e.Message}", location, null);
                }
                if (first && segments.Count == 1 && sequence > 0 && previous != AuditChain.Genesis)
                {
                    // A rotated segment given alone: its chain continues from a segment we were not given.
                    records = sequence;
                    head = previous;
                }
                first = false;
                if (sequence != records) return Bad($"sequence {sequence} where {records} was expected (a record was deleted, inserted or moved)", location, sequence);
                if (previous != head) return Bad("prev does not match the hash of the record before it (a record was deleted, inserted or moved)", location, sequence);
                var actual = AuditChain.Hash(sequence, previous, Encoding.UTF8.GetBytes(recordJson));
                if (actual != stated) return Bad("hash does not match the record (the record was edited)", location, sequence);
                records++;
                head = actual;
                if (expected.TryGetValue(records, out var due))
                {
                    if (due.Any(c => c.Head != head))
                        return Bad($"the chain's hash after {records} records differs from the signed checkpoint (the log was rewritten)", location, sequence);
                    matched += due.Count;
                }
            }
        }
        var beyond = checkpoints.Where(c => c.Records > records).OrderBy(c => c.Records).FirstOrDefault();
        if (beyond is not null)
            return Bad($"a signed checkpoint ({beyond.Time:O}) vouches for {beyond.Records} records but the log holds {records} (records were removed from the end)", "end of log", null);
        return new AuditVerification(true, records, head, segments.Count, matched, null, null, null);
    }

    /// <summary>The records of a log (a file or a folder's segments in order), for counting; verify the chain with <see cref="Verify"/>.</summary>
    public static IEnumerable<AuditRecord> Records(string path)
    {
        foreach (var segment in Segments(path))
        {
            foreach (var (line, complete) in Lines(segment))
            {
                if (!complete) yield break;
                using var document = JsonDocument.Parse(line);
                yield return document.RootElement.GetProperty("record").Deserialize<AuditRecord>(AuditChain.Compact)
                    ?? throw new InvalidDataException($"{segment}: an empty record");
            }
        }
    }

    /// <summary>
    /// The logs at <paramref name="path"/>: the path itself when it is a log file or a folder holding a log; otherwise the folders
    /// directly inside it that hold one (one per replica, as <c>serve --replica-id</c> writes them), in name order.
    /// </summary>
    public static IReadOnlyList<string> Logs(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (File.Exists(path) || (Directory.Exists(path) && HoldsLog(path))) return [path];
        if (!Directory.Exists(path)) throw new FileNotFoundException($"audit log {path} not found", path);
        var replicas = Directory.GetDirectories(path).Where(HoldsLog).Order(StringComparer.Ordinal).ToList();
        if (replicas.Count == 0) throw new FileNotFoundException($"{path} holds no audit log ({AuditLog.ActiveFile}), neither itself nor in a replica folder", path);
        return replicas;
    }

    /// <summary>Whether <paramref name="folder"/> holds a log: an active file or at least one rotated segment.</summary>
    public static bool HoldsLog(string folder) =>
        File.Exists(Path.Combine(folder, AuditLog.ActiveFile)) || Directory.EnumerateFiles(folder, $"{AuditLog.SegmentPrefix}*{AuditLog.Extension}").Any();

    /// <summary>The files of a log: a single file, or a folder's rotated segments in order followed by the active file.</summary>
    public static IReadOnlyList<string> Segments(string path)
    {
        if (File.Exists(path)) return [path];
        if (!Directory.Exists(path)) throw new FileNotFoundException($"audit log {path} not found", path);
        var rotated = Directory.GetFiles(path, $"{AuditLog.SegmentPrefix}*{AuditLog.Extension}").Order(StringComparer.Ordinal).ToList();
        var active = Path.Combine(path, AuditLog.ActiveFile);
        if (File.Exists(active)) rotated.Add(active);
        if (rotated.Count == 0) throw new FileNotFoundException($"{path} holds no audit log ({AuditLog.ActiveFile})", path);
        return rotated;
    }

    private static IEnumerable<(byte[] Line, bool Complete)> Lines(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new List<byte>(512);
        int value;
        while ((value = stream.ReadByte()) >= 0)
        {
            if (value == '\n')
            {
                yield return (buffer.ToArray(), true);
                buffer.Clear();
            }
            else if (buffer.Count <= AuditChain.MaxLineBytes) buffer.Add((byte)value);
        }
        if (buffer.Count > 0) yield return (buffer.ToArray(), false);
    }
}
