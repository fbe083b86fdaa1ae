using SecureMnist.Audit;
using SecureMnist.Security;

namespace SecureMnist.Tests.Audit;

public sealed class AuditLogTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();

    private static AuditRecord Record(int i) => new(DateTimeOffset.UnixEpoch.AddSeconds(i), $"req-{i}", "alice", new string('a', 64), new string('b', 64),
        i % 3 == 0 ? AuditOutcome.Abstained : AuditOutcome.Accepted, i % 10, 0.9, 1.5);

    private async Task<string> WriteLog(int count, AuditLogOptions? options = null)
    {
        await using var log = AuditLog.Open(directory, key, options);
        await Task.WhenAll(Enumerable.Range(0, count).Select(i => log.AppendAsync(Record(i))));
        return Path.Combine(directory, AuditLog.ActiveFile);
    }

    private IReadOnlyList<AuditCheckpoint> KeptCheckpoints() => AuditCheckpoint.ReadAll(Path.Combine(directory, AuditCheckpoint.CheckpointsFile));

    private static void RewriteLines(string path, Func<List<string>, List<string>> change) =>
        File.WriteAllLines(path, change([.. File.ReadAllLines(path)]));

    [Fact]
    public async Task Concurrent_appends_form_one_intact_chain()
    {
        var path = await WriteLog(200);
        var verdict = AuditVerifier.Verify(path, KeptCheckpoints(), key.PublicKey);
        Assert.True(verdict.Intact, verdict.Problem);
        Assert.Equal(200, verdict.Records);
        Assert.True(verdict.CheckpointsChecked >= 1);
    }

    [Fact]
    public async Task An_edited_record_is_named()
    {
        var path = await WriteLog(20);
        RewriteLines(path, lines => { lines[7] = lines[7].Replace("\"label\":7", "\"label\":1", StringComparison.Ordinal); return lines; });
        var verdict = AuditVerifier.Verify(path);
        Assert.False(verdict.Intact);
        Assert.Equal(7, verdict.FirstBadSequence);
        Assert.Contains("edited", verdict.Problem);
        Assert.Contains("line 8", verdict.Location);
    }

    [Fact]
    public async Task A_deleted_record_is_caught()
    {
        var path = await WriteLog(20);
        RewriteLines(path, lines => { lines.RemoveAt(5); return lines; });
        var verdict = AuditVerifier.Verify(path);
        Assert.False(verdict.Intact);
        Assert.Equal(6, verdict.FirstBadSequence);
    }

    [Fact]
    public async Task Reordered_records_are_caught()
    {
        var path = await WriteLog(20);
        RewriteLines(path, lines => { (lines[3], lines[4]) = (lines[4], lines[3]); return lines; });
        var verdict = AuditVerifier.Verify(path);
        Assert.False(verdict.Intact);
        Assert.Equal(4, verdict.FirstBadSequence);
    }

    [Fact]
    public async Task An_inserted_record_with_a_recomputed_hash_is_caught()
    {
        var path = await WriteLog(20);
        RewriteLines(path, lines =>
        {
            // A forger who knows the format chains a new record after record 9, but cannot fix the records after it.
            var (line, _) = AuditChain.Line(10, HashOf(lines[9]), Record(99));
            lines.Insert(10, System.Text.Encoding.UTF8.GetString(line).TrimEnd('\n'));
            return lines;
        });
        var verdict = AuditVerifier.Verify(path);
        Assert.False(verdict.Intact);
        Assert.Equal(10, verdict.FirstBadSequence);
    }

    [Fact]
    public async Task A_cut_off_last_line_is_caught()
    {
        var path = await WriteLog(20);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^30]);
        var verdict = AuditVerifier.Verify(path);
        Assert.False(verdict.Intact);
        Assert.Contains("cut off", verdict.Problem);
    }

    [Fact]
    public async Task After_a_crash_an_unterminated_last_line_is_dropped_and_the_repair_is_logged()
    {
        var path = await WriteLog(20);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^30]); // record 19 torn mid-write
        File.Delete(Path.Combine(directory, AuditCheckpoint.CheckpointsFile)); // a crash leaves no shutdown checkpoint
        await using (var log = AuditLog.Open(directory, key))
            Assert.Equal(20, log.Records); // 19 complete records + the repair note
        var verdict = AuditVerifier.Verify(path);
        Assert.True(verdict.Intact, verdict.Problem);
        var last = System.Text.Json.JsonDocument.Parse(File.ReadLines(path).Last()).RootElement.GetProperty("record");
        Assert.Equal("recovered", last.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task Removing_whole_records_from_the_end_is_caught_by_a_checkpoint()
    {
        var path = await WriteLog(20);
        var checkpoints = KeptCheckpoints();
        RewriteLines(path, lines => lines[..15]);
        Assert.True(AuditVerifier.Verify(path).Intact); // the chain alone cannot see a clean cut
        var verdict = AuditVerifier.Verify(path, checkpoints, key.PublicKey);
        Assert.False(verdict.Intact);
        Assert.Contains("removed from the end", verdict.Problem);
    }

    [Fact]
    public async Task A_consistent_rewrite_of_the_whole_log_is_caught_by_a_kept_checkpoint()
    {
        var path = await WriteLog(20);
        var kept = KeptCheckpoints();
        // Rebuild a perfectly chained log with one decision changed.
        var forged = new List<string>();
        var head = AuditChain.Genesis;
        for (var i = 0; i < 20; i++)
        {
            var record = i == 4 ? Record(i) with { Outcome = AuditOutcome.Accepted, Label = 3 } : Record(i);
            var (line, hash) = AuditChain.Line(i, head, record);
            forged.Add(System.Text.Encoding.UTF8.GetString(line).TrimEnd('\n'));
            head = hash;
        }
        File.WriteAllLines(path, forged);
        Assert.True(AuditVerifier.Verify(path).Intact);
        var verdict = AuditVerifier.Verify(path, kept, key.PublicKey);
        Assert.False(verdict.Intact);
        Assert.Contains("rewritten", verdict.Problem);
    }

    [Fact]
    public async Task A_checkpoint_signed_by_another_key_is_refused()
    {
        var path = await WriteLog(5);
        using var other = SigningKey.Generate();
        var verdict = AuditVerifier.Verify(path, KeptCheckpoints(), other.PublicKey);
        Assert.False(verdict.Intact);
        Assert.Contains("not signed", verdict.Problem);
    }

    [Fact]
    public async Task Rotation_keeps_the_chain_across_segments()
    {
        await using (var log = AuditLog.Open(directory, key, new AuditLogOptions(MaxSegmentBytes: 8192, CheckpointEveryRecords: 50)))
            for (var i = 0; i < 300; i++) await log.AppendAsync(Record(i)); // one at a time, so rotation happens between small writes
        var segments = AuditVerifier.Segments(directory);
        Assert.True(segments.Count >= 3, $"{segments.Count} segments");
        var verdict = AuditVerifier.Verify(directory, KeptCheckpoints(), key.PublicKey);
        Assert.True(verdict.Intact, verdict.Problem);
        Assert.Equal(300, verdict.Records);
        // Deleting a middle segment breaks the chain at the next one.
        File.Delete(segments[1]);
        Assert.False(AuditVerifier.Verify(directory, KeptCheckpoints(), key.PublicKey).Intact);
    }

    [Fact]
    public async Task A_reopened_log_continues_the_chain_and_a_tampered_one_is_refused()
    {
        var path = await WriteLog(10);
        await using (var log = AuditLog.Open(directory, key))
        {
            Assert.Equal(10, log.Records);
            await log.AppendAsync(Record(10));
        }
        Assert.Equal(11, AuditVerifier.Verify(directory, KeptCheckpoints(), key.PublicKey).Records);
        RewriteLines(path, lines => { lines.RemoveAt(2); return lines; });
        var error = Assert.Throws<InvalidDataException>(() => AuditLog.Open(directory, key));
        Assert.Contains("does not verify", error.Message);
    }

    [Fact]
    public async Task A_second_writer_on_the_same_folder_is_refused_until_the_first_closes()
    {
        await using (var first = AuditLog.Open(directory, key))
        {
            await first.AppendAsync(Record(0));
            var error = Assert.Throws<IOException>(() => AuditLog.Open(directory, key));
            Assert.Contains("in use by another process", error.Message, StringComparison.Ordinal);
            await first.AppendAsync(Record(1)); // the refused opener changed nothing
        }
        await using (var again = AuditLog.Open(directory, key)) Assert.Equal(2, again.Records);
        Assert.True(AuditVerifier.Verify(directory, KeptCheckpoints(), key.PublicKey).Intact);
    }

    [Fact]
    public async Task A_folder_of_replica_logs_lists_each_log_and_a_single_log_lists_itself()
    {
        foreach (var replica in new[] { "r2", "r1" })
            await using (var log = AuditLog.Open(Path.Combine(directory, replica), key))
                await log.AppendAsync(Record(0));
        Directory.CreateDirectory(Path.Combine(directory, "empty"));
        Assert.Equal([Path.Combine(directory, "r1"), Path.Combine(directory, "r2")], AuditVerifier.Logs(directory));
        Assert.Equal([Path.Combine(directory, "r1")], AuditVerifier.Logs(Path.Combine(directory, "r1")));
        Assert.Throws<FileNotFoundException>(() => AuditVerifier.Logs(Path.Combine(directory, "empty")));
    }

    private static string HashOf(string line) =>
        System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("hash").GetString()!;

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }
}
