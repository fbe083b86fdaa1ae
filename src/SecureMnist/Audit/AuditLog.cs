using System.Text.Json;
using System.Threading.Channels;
using SecureMnist.Security;

namespace SecureMnist.Audit;

/// <summary>When the log rotates and how often its head is anchored by a signed checkpoint.</summary>
public sealed record AuditLogOptions(long MaxSegmentBytes = 64L << 20, int CheckpointEveryRecords = 1000, double CheckpointEverySeconds = 60)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxSegmentBytes, 4096);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(CheckpointEveryRecords);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(CheckpointEverySeconds);
    }
}

/// <summary>
/// Append-only, hash-chained JSONL audit log. <see cref="AppendAsync"/> completes only after the record is on disk
/// (fsync); records that arrive together share one write and one fsync (group commit). The log resumes after a
/// restart only if its existing chain verifies. Rotation renames the active file to a numbered segment and the chain
/// continues into the next file; a signed checkpoint (record count + head hash) is appended to
/// <see cref="AuditCheckpoint.CheckpointsFile"/> periodically, at rotation and at shutdown.
/// </summary>
public sealed class AuditLog : IAsyncDisposable
{
    public const string ActiveFile = "audit.jsonl";
    public const string SegmentPrefix = "audit-";
    public const string Extension = ".jsonl";
    /// <summary>Held open exclusively while a process writes the log: a second writer (two replicas given one folder) is refused.</summary>
    public const string LockFile = "audit.lock";

    private readonly string directory;
    private readonly SigningKey checkpointKey;
    private readonly AuditLogOptions options;
    private readonly Channel<(AuditRecord Record, TaskCompletionSource Done)> pending =
        Channel.CreateUnbounded<(AuditRecord, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task writer;
    private FileStream active;
    private readonly FileStream writerLock;
    private long recordsAtCheckpoint;
    private DateTimeOffset lastCheckpoint = DateTimeOffset.UtcNow;

    private AuditLog(string directory, SigningKey checkpointKey, AuditLogOptions options, long records, string head, FileStream writerLock)
    {
        this.directory = directory;
        this.writerLock = writerLock;
        this.checkpointKey = checkpointKey;
        this.options = options;
        Records = records;
        Head = head;
        recordsAtCheckpoint = records;
        active = OpenActive();
        writer = Task.Run(WriteLoop);
    }

    /// <summary>Records in the chain so far, across all segments.</summary>
    public long Records { get; private set; }

    /// <summary>Hash of the newest record (64 zeros for an empty log).</summary>
    public string Head { get; private set; }

    public string Directory => directory;

    /// <summary>Opens or creates the log in <paramref name="directory"/>; refuses an existing log whose chain does not verify.</summary>
    public static AuditLog Open(string directory, SigningKey checkpointKey, AuditLogOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(checkpointKey);
        options ??= new AuditLogOptions();
        options.Validate();
        System.IO.Directory.CreateDirectory(directory);
        var writerLock = Lock(directory);
        try
        {
            return Open(directory, checkpointKey, options, writerLock);
        }
        catch
        {
            writerLock.Dispose();
            throw;
        }
    }

    /// <summary>The exclusive lock on the folder (an OS file lock, released when the process dies, so a crash never leaves it held).</summary>
    private static FileStream Lock(string directory)
    {
        try
        {
            return new FileStream(Path.Combine(directory, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"the audit log in {directory} is in use by another process; give each replica its own folder (serve --replica-id)", e);
        }
    }

    private static AuditLog Open(string directory, SigningKey checkpointKey, AuditLogOptions options, FileStream writerLock)
    {
        long records = 0;
        var head = AuditChain.Genesis;
        var hasLog = AuditVerifier.HoldsLog(directory);
        var repaired = hasLog ? DropUnterminatedTail(Path.Combine(directory, ActiveFile)) : 0;
        if (hasLog)
        {
            var checkpointsPath = Path.Combine(directory, AuditCheckpoint.CheckpointsFile);
            var checkpoints = File.Exists(checkpointsPath) ? AuditCheckpoint.ReadAll(checkpointsPath) : [];
            var verdict = AuditVerifier.Verify(directory, checkpoints, checkpointKey.PublicKey);
            if (!verdict.Intact)
                throw new InvalidDataException($"the audit log in {directory} does not verify ({verdict.Location}: {verdict.Problem}); move it aside to start a new one");
            (records, head) = (verdict.Records, verdict.Head);
        }
        var log = new AuditLog(directory, checkpointKey, options, records, head, writerLock);
        if (repaired > 0)
            log.AppendAsync(new AuditRecord(DateTimeOffset.UtcNow, "startup", null, null, null, AuditOutcome.Recovered, null, null, 0,
                $"removed an unterminated final line of {repaired} bytes (a write cut off by a crash; never acknowledged)")).GetAwaiter().GetResult();
        return log;
    }

    /// <summary>
    /// A crash can cut the last write short. Its records were never acknowledged (the fsync had not returned), so the
    /// unterminated tail is removed; the removal itself is then logged. Complete lines are never touched.
    /// </summary>
    private static long DropUnterminatedTail(string path)
    {
        if (!File.Exists(path)) return 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        var length = stream.Length;
        var position = length;
        var one = new byte[1];
        while (position > 0)
        {
            stream.Position = position - 1;
            stream.ReadExactly(one);
            if (one[0] == (byte)'\n') break;
            position--;
        }
        if (position == length) return 0;
        stream.SetLength(position);
        stream.Flush(flushToDisk: true);
        return length - position;
    }

    /// <summary>Queues a record; the task completes once it is durable on disk.</summary>
    public Task AppendAsync(AuditRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!pending.Writer.TryWrite((record, done))) done.SetException(new ObjectDisposedException(nameof(AuditLog)));
        return done.Task;
    }

    private FileStream OpenActive() =>
        new(Path.Combine(directory, ActiveFile), FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16);

    private async Task WriteLoop()
    {
        var batch = new List<(AuditRecord Record, TaskCompletionSource Done)>();
        while (await pending.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < 4096 && pending.Reader.TryRead(out var item)) batch.Add(item);
            try
            {
                var records = Records;
                var head = Head;
                foreach (var (record, _) in batch)
                {
                    var (line, hash) = AuditChain.Line(records, head, record);
                    active.Write(line);
                    records++;
                    head = hash;
                }
                active.Flush(flushToDisk: true);
                (Records, Head) = (records, head);
                foreach (var (_, done) in batch) done.TrySetResult();
                if (active.Length >= options.MaxSegmentBytes) Rotate();
                else if (Records - recordsAtCheckpoint >= options.CheckpointEveryRecords
                         || (Records > recordsAtCheckpoint && (DateTimeOffset.UtcNow - lastCheckpoint).TotalSeconds >= options.CheckpointEverySeconds))
                    WriteCheckpoint();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                foreach (var (_, done) in batch) done.TrySetException(e);
            }
        }
    }

    private void Rotate()
    {
        active.Dispose();
        var number = System.IO.Directory.EnumerateFiles(directory, $"{SegmentPrefix}*{Extension}").Count() + 1;
        File.Move(Path.Combine(directory, ActiveFile), Path.Combine(directory, $"{SegmentPrefix}{number:D6}{Extension}"));
        WriteCheckpoint();
        active = OpenActive();
    }

    /// <summary>Appends a signed checkpoint of the current head to the checkpoints file, durably.</summary>
    private AuditCheckpoint WriteCheckpoint()
    {
        var checkpoint = AuditCheckpoint.Create(Records, Head, checkpointKey);
        var line = JsonSerializer.SerializeToUtf8Bytes(checkpoint, AuditChain.Compact);
        using (var stream = new FileStream(Path.Combine(directory, AuditCheckpoint.CheckpointsFile), FileMode.Append, FileAccess.Write, FileShare.Read))
        {
            stream.Write(line);
            stream.WriteByte((byte)'\n');
            stream.Flush(flushToDisk: true);
        }
        recordsAtCheckpoint = Records;
        lastCheckpoint = checkpoint.Time;
        return checkpoint;
    }

    /// <summary>Drains queued records, writes a final checkpoint and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        pending.Writer.TryComplete();
        await writer.ConfigureAwait(false);
        if (Records > recordsAtCheckpoint || Records == 0) WriteCheckpoint();
        await active.DisposeAsync().ConfigureAwait(false);
        await writerLock.DisposeAsync().ConfigureAwait(false);
    }
}
