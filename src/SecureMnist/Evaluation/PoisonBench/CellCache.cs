using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SecureMnist.IO;

namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>
/// A folder of finished grid cells that several processes (on one machine or, through a shared mount, on many) fill together. A cell's
/// result is kept under its fingerprint, so a rerun skips it; a process claims a cell by creating its claim file exclusively before
/// running it, so no cell runs twice at once; a claim whose process died on this host is taken over. Every run leaves a record of its
/// own in <c>runs/</c> (cell, fingerprint, worker), which is how "each cell ran exactly once" can be checked. One file per run, created
/// exclusively: .NET's append mode seeks to the end it saw on opening, so processes appending to one shared log overwrite each other's lines.
/// </summary>
public sealed class CellCache
{
    private const string RunFolder = "runs";

    public CellCache(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Path.Combine(Root, "cells"));
        Directory.CreateDirectory(Path.Combine(Root, "claims"));
        Directory.CreateDirectory(Path.Combine(Root, RunFolder));
    }

    public string Root { get; }

    /// <summary>An existing cache, for reading: a mistyped path is refused instead of being created empty.</summary>
    public static CellCache Open(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        if (!Directory.Exists(Path.Combine(root, "cells")))
            throw new DirectoryNotFoundException($"{Path.GetFullPath(root)} is not a poison-bench cache (it has no cells/ folder); give the --cache folder the shards wrote to");
        return new CellCache(root);
    }

    /// <summary>
    /// The code cells are computed by: the library's module version id, which a deterministic build derives from its content, so cells
    /// survive a rebuild of the same code (on any machine with the same SDK) and a change of the documentation, but not a change of code.
    /// </summary>
    public static string CodeFingerprint { get; } = typeof(CellCache).Assembly.ManifestModule.ModuleVersionId.ToString("N");

    /// <summary>Who runs cells from this process: host and process id.</summary>
    public static string Worker { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>A cell's fingerprint: its coordinates, the grid's training and measuring settings, and the code (<see cref="CodeFingerprint"/>).</summary>
    public static string Fingerprint(PoisonGrid grid, GridCell cell, string codeVersion)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(cell);
        var settings = new { grid.TrainImages, grid.Epochs, grid.TestImages, grid.Architecture, grid.StripOverlays, grid.StripCalibration, grid.StripImages, grid.Sanitize, grid.ReferenceImages, cell, codeVersion, bench = 1 };
        var text = JsonSerializer.Serialize(settings, JsonFormat.Documents);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }

    private string ResultPath(GridCell cell, string fingerprint) => Path.Combine(Root, "cells", $"{cell.Id}-{fingerprint}.json");

    private string ClaimPath(GridCell cell, string fingerprint) => Path.Combine(Root, "claims", $"{cell.Id}-{fingerprint}.claim");

    /// <summary>A scratch folder for a cell's run (training checkpoints); removed when the cell finishes.</summary>
    public string WorkDirectory(GridCell cell, string fingerprint) => Path.Combine(Root, "work", $"{cell.Id}-{fingerprint}");

    /// <summary>A file a cell leaves for other cells (the clean control's weights, which the clean-label attack's surrogate is).</summary>
    public string ArtifactPath(GridCell cell, string fingerprint, string name) => Path.Combine(Root, "artifacts", $"{cell.Id}-{fingerprint}-{name}");

    public CellResult? Finished(GridCell cell, string fingerprint)
    {
        var path = ResultPath(cell, fingerprint);
        if (!File.Exists(path)) return null;
        try
        {
            var result = JsonFormat.Load<CellResult>(path);
            return result.Fingerprint == fingerprint && result.Cell == cell ? result : null;
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>
    /// The cell's result: from the cache, or by running it here after claiming it, or by waiting for the process that holds its claim.
    /// <paramref name="waiting"/> is told once when this process starts waiting on another.
    /// </summary>
    public CellResult GetOrRun(GridCell cell, string fingerprint, Func<CellResult> run, Action<string>? waiting = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cell);
        ArgumentNullException.ThrowIfNull(run);
        var told = false;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Finished(cell, fingerprint) is { } done) return done;
            var claim = ClaimPath(cell, fingerprint);
            if (TryClaim(claim))
            {
                try
                {
                    // Another process may have finished it between the check and the claim.
                    if (Finished(cell, fingerprint) is { } late) return late;
                    RecordRun(cell, fingerprint);
                    var result = run();
                    JsonFormat.Save(ResultPath(cell, fingerprint), result);
                    var work = WorkDirectory(cell, fingerprint);
                    if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
                    return result;
                }
                finally
                {
                    File.Delete(claim);
                }
            }
            if (IsStale(claim))
            {
                File.Delete(claim);
                continue;
            }
            if (!told)
            {
                waiting?.Invoke(File.Exists(claim) ? ReadClaim(claim) : "another process");
                told = true;
            }
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>The cells each worker ran, from the run records in <c>runs/</c> (one file a run): cell id and fingerprint, then the worker.</summary>
    public IReadOnlyList<(string Cell, string Fingerprint, string Worker)> Runs()
    {
        var folder = Path.Combine(Root, RunFolder);
        if (!Directory.Exists(folder)) return [];
        return [.. Directory.EnumerateFiles(folder, "*.run").Order(StringComparer.Ordinal).Select(File.ReadAllText)
            .Select(line => line.Trim().Split(' ')).Where(parts => parts.Length == 4).Select(parts => (parts[1], parts[2], parts[3]))];
    }

    private void RecordRun(GridCell cell, string fingerprint)
    {
        var started = DateTimeOffset.UtcNow;
        var name = $"{started:yyyyMMddTHHmmssfffffff}-{cell.Id}-{fingerprint}-{Worker.Replace(':', '-')}.run";
        using var stream = new FileStream(Path.Combine(Root, RunFolder, name), FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(Encoding.UTF8.GetBytes($"{started:O} {cell.Id} {fingerprint} {Worker}\n"));
    }

    private static bool TryClaim(string claim)
    {
        try
        {
            using var stream = new FileStream(claim, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            stream.Write(Encoding.UTF8.GetBytes(Worker));
            return true;
        }
        catch (IOException) when (File.Exists(claim))
        {
            return false;
        }
    }

    private static string ReadClaim(string claim)
    {
        try
        {
            return File.ReadAllText(claim).Trim();
        }
        catch (IOException)
        {
            return "another process";
        }
    }

    /// <summary>A claim made on this host by a process that no longer runs. Claims from other hosts are never judged stale.</summary>
    private static bool IsStale(string claim)
    {
        var owner = ReadClaim(claim).Split(':');
        if (owner.Length != 2 || owner[0] != Environment.MachineName || !int.TryParse(owner[1], out var pid)) return false;
        if (pid == Environment.ProcessId) return false;
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }
}
