using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using SecureMnist.Data;
using SecureMnist.Training;

namespace SecureMnist.Security;

public enum CheckStatus
{
    Passed,
    Failed,
    Skipped,
}

public sealed record ProvenanceCheck(string Name, CheckStatus Status, string Detail);

/// <summary>The provenance chain of a package, link by link; trusted only when no link failed.</summary>
public sealed record ProvenanceReport(string Package, IReadOnlyList<ProvenanceCheck> Checks)
{
    public bool Ok => Checks.All(c => c.Status != CheckStatus.Failed);
}

/// <summary>
/// Follows a package back to what made it: the signature and signer, the embedded training record and its digest,
/// the run record kept on this machine, the dataset digests against the installed, re-verified dataset, and the
/// code version against the repository.
/// </summary>
public static class ProvenanceVerifier
{
    public static ProvenanceReport Verify(string package, TrustedPublicKey trustedKey, string dataRoot, string runsRoot, string? repository)
    {
        ArgumentNullException.ThrowIfNull(trustedKey);
        var checks = new List<ProvenanceCheck>();
        var verification = ModelPackage.Verify(package, trustedKey);
        checks.Add(new("signature", verification.Trusted ? CheckStatus.Passed : CheckStatus.Failed, verification.Reason));
        if (!verification.Trusted) return new ProvenanceReport(package, checks);
        var manifest = verification.Manifest!;
        checks.Add(manifest.SignerKeyId == trustedKey.Id
            ? new("signer", CheckStatus.Passed, $"manifest names signer {manifest.SignerKeyId}, the trusted key")
            : new("signer", CheckStatus.Failed, $"manifest names signer {manifest.SignerKeyId ?? "(none)"}, but the signature is by {trustedKey.Id}"));

        if (manifest.Training is not { } record)
        {
            checks.Add(manifest.ImportedFrom is { } source
                ? new("origin", CheckStatus.Passed, $"imported from {source.File} (SHA-256 {source.Sha256}); no training record, the chain ends at that file")
                : new("origin", CheckStatus.Failed, "the manifest carries neither a training record nor an import source"));
            return new ProvenanceReport(package, checks);
        }

        var recordBytes = JsonSerializer.SerializeToUtf8Bytes(record, SecurityJsonContext.Default.RunRecord);
        var recordDigest = Convert.ToHexStringLower(SHA256.HashData(recordBytes));
        checks.Add(recordDigest == manifest.TrainingRecordSha256
            ? new("training record", CheckStatus.Passed, $"embedded run record {record.RunId} hashes to the manifest's {recordDigest[..16]}...")
            : new("training record", CheckStatus.Failed, $"embedded run record hashes to {recordDigest}, the manifest says {manifest.TrainingRecordSha256 ?? "(nothing)"}"));

        var runFile = FindRunRecord(runsRoot, record.RunId);
        if (runFile is null) checks.Add(new("run record on disk", CheckStatus.Skipped, $"no run record {record.RunId} under {runsRoot} on this machine"));
        else
        {
            var onDisk = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(runFile)));
            checks.Add(onDisk == manifest.TrainingRecordSha256
                ? new("run record on disk", CheckStatus.Passed, $"{runFile} is the record the package embeds")
                : new("run record on disk", CheckStatus.Failed, $"{runFile} differs from the embedded record (SHA-256 {onDisk}); the run was redone or edited after packaging"));
        }

        if (record.Privacy is { } privacy) checks.Add(PrivacyCheck(privacy, record.Options.Privacy));
        checks.Add(DatasetCheck(manifest, record, dataRoot));
        checks.Add(CodeCheck(manifest.CodeVersion, record.CodeVersion, repository));
        return new ProvenanceReport(package, checks);
    }

    /// <summary>
    /// A DP-SGD model's guarantee: its recorded epsilon must be what the RDP accountant computes again from the recorded noise multiplier,
    /// sampling rate, steps and delta, and within the budget the run asked for.
    /// </summary>
    internal static ProvenanceCheck PrivacyCheck(PrivacyRecord privacy, PrivacyOptions? asked)
    {
        const string name = "differential privacy";
        var settings = $"noise multiplier {privacy.NoiseMultiplier:G6}, sampling rate {privacy.SampleRate:G6}, {privacy.Steps} steps, clipping norm {privacy.MaxGradientNorm:G}, {(privacy.SecureNoise ? "secure noise" : "seeded noise")}";
        double recomputed;
        try
        {
            recomputed = privacy.RecomputedEpsilon();
        }
        catch (ArgumentOutOfRangeException e)
        {
            return new(name, CheckStatus.Failed, $"the recorded DP settings are not valid ({e.Message})");
        }
        if (Math.Abs(recomputed - privacy.Epsilon) > 1e-6 * Math.Max(1, recomputed))
            return new(name, CheckStatus.Failed, $"the record claims epsilon {privacy.Epsilon:G6}, but its settings ({settings}) spend {recomputed:G6} at delta {privacy.Delta:G3}");
        if (asked?.TargetEpsilon is { } budget && recomputed > budget)
            return new(name, CheckStatus.Failed, $"epsilon {recomputed:G6} exceeds the run's budget of {budget:G}");
        return new(name, CheckStatus.Passed, $"({recomputed:F3}, {privacy.Delta:G3})-DP recomputed by the RDP accountant from {settings}");
    }

    /// <summary>Run folders are named after the package; the record inside names the run.</summary>
    private static string? FindRunRecord(string runsRoot, string runId)
    {
        if (!Directory.Exists(runsRoot)) return null;
        foreach (var folder in Directory.EnumerateDirectories(runsRoot))
        {
            var file = Path.Combine(folder, Trainer.RunRecordFile);
            if (!File.Exists(file) || new FileInfo(file).Length > ModelPackage.MaxManifestBytes) continue;
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllBytes(file));
                if (document.RootElement.TryGetProperty("runId", out var id) && id.GetString() == runId) return file;
            }
            catch (JsonException)
            {
                // Not a run record.
            }
        }
        return null;
    }

    private static ProvenanceCheck DatasetCheck(ModelManifest manifest, RunRecord record, string dataRoot)
    {
        const string name = "dataset";
        if (manifest.DatasetDigests is not { } digests || manifest.Dataset is not { } dataset) return new(name, CheckStatus.Failed, "the manifest records no dataset digests");
        if (dataset != record.Dataset || !SameDigests(digests, record.DatasetDigests))
            return new(name, CheckStatus.Failed, "the manifest's dataset differs from the training record's");
        var store = new DatasetStore(dataRoot);
        var folder = FindDataset(store, dataset);
        if (folder is null) return new(name, CheckStatus.Skipped, $"dataset {dataset} is not installed under {dataRoot}; its digests could not be re-checked");
        var (directory, installed) = store.Resolve(folder);
        if (!SameDigests(digests, installed.Files))
            return new(name, CheckStatus.Failed, $"{directory} is a different {dataset}: its manifest's digests differ from the ones the model was trained on");
        var verification = installed.Verify(directory);
        return verification.Ok
            ? new(name, CheckStatus.Passed, $"{digests.Count} files of {dataset} in {directory} re-hashed and match the digests the model was trained on")
            : new(name, CheckStatus.Failed, $"{directory} no longer matches its digests: {verification.Message}");
    }

    private static string? FindDataset(DatasetStore store, string dataset)
    {
        if (DatasetManifest.KnownNames.Contains(dataset)) return Directory.Exists(store.DefaultDirectory(dataset)) ? dataset : null;
        if (!Directory.Exists(store.DataRoot)) return null;
        foreach (var folder in Directory.EnumerateDirectories(store.DataRoot))
        {
            var manifestPath = Path.Combine(folder, DatasetManifest.FileName);
            if (!File.Exists(manifestPath)) continue;
            try
            {
                using var stream = File.OpenRead(manifestPath);
                if (DatasetManifest.Parse(stream, manifestPath).Name == dataset) return folder;
            }
            catch (DatasetException)
            {
                // An unreadable manifest is not the dataset we look for.
            }
        }
        return null;
    }

    private static bool SameDigests(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var other) && string.Equals(other, kv.Value, StringComparison.OrdinalIgnoreCase));

    private static ProvenanceCheck CodeCheck(string manifestVersion, string recordVersion, string? repository)
    {
        const string name = "code version";
        if (manifestVersion != recordVersion) return new(name, CheckStatus.Failed, $"manifest says {manifestVersion}, training record says {recordVersion}");
        if (manifestVersion.EndsWith("+modified", StringComparison.Ordinal))
            return new(name, CheckStatus.Failed, $"trained from uncommitted changes on top of {manifestVersion[..40]}; that code cannot be traced");
        if (manifestVersion.Length != 40 || !manifestVersion.All(char.IsAsciiHexDigitLower))
            return new(name, CheckStatus.Failed, $"'{manifestVersion}' is not a commit id");
        // .git is a folder in a clone and a file in a worktree or submodule.
        if (repository is null || !Path.Exists(Path.Combine(repository, ".git"))) return new(name, CheckStatus.Skipped, $"commit {manifestVersion}; no git repository here to look it up in");
        try
        {
            var start = new ProcessStartInfo("git", ["-C", repository, "cat-file", "-e", manifestVersion + "^{commit}"]) { RedirectStandardError = true, RedirectStandardOutput = true };
            using var process = Process.Start(start)!;
            process.WaitForExit();
            return process.ExitCode == 0
                ? new(name, CheckStatus.Passed, $"commit {manifestVersion} is in {Path.GetFullPath(repository)}")
                : new(name, CheckStatus.Failed, $"commit {manifestVersion} is not in {Path.GetFullPath(repository)}");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new(name, CheckStatus.Skipped, $"commit {manifestVersion}; git is not installed");
        }
    }
}
