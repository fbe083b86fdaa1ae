using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SecureMnist.Training;

/// <summary>Metrics of one finished epoch.</summary>
public sealed record EpochRecord(
    int Epoch, double LearningRate, double TrainLoss, double TrainAccuracy,
    double? ValidationAccuracy, double? TestAccuracy, double Seconds, double ImagesPerSecond,
    double DefenseEpsilon = 0, double? RobustValidationAccuracy = null,
    /// <summary>With DP-SGD, the privacy spent by the end of this epoch (at the run's delta); null otherwise.</summary>
    double? PrivacyEpsilon = null);

/// <summary>
/// What a DP-SGD run guarantees, as its accountant measured it: (<see cref="Epsilon"/>, <see cref="Delta"/>)-differential privacy
/// for each training example, from <see cref="Steps"/> steps of the sampled Gaussian mechanism with this noise multiplier, Poisson
/// sampling rate and clipping norm, composed in Rényi DP (best order <see cref="Order"/>).
/// </summary>
public sealed record PrivacyRecord(
    double Epsilon, double Delta, double NoiseMultiplier, double SampleRate, long Steps, double MaxGradientNorm, double Order,
    string Accountant, bool SecureNoise)
{
    public const string RdpAccountant = "rdp (sampled Gaussian, Mironov et al. 2019; Balle et al. 2020 conversion)";

    /// <summary>The epsilon these settings spend, recomputed from scratch.</summary>
    public double RecomputedEpsilon()
    {
        var accountant = new Privacy.RdpAccountant();
        accountant.Step(NoiseMultiplier, SampleRate, Steps);
        return accountant.Epsilon(Delta).Epsilon;
    }
}

/// <summary>
/// The machine a run used. <see cref="VectorExtensions"/> are the CPU's SIMD extensions that set libtorch's speed (AVX2, AVX-512 and
/// its BF16/VNNI parts, AMX): two hosts with one CPU name can differ by twice in speed, so figures are compared only between equal sets.
/// </summary>
public sealed record MachineInfo(string Os, string Cpu, int LogicalCores, int TorchThreads, string DotnetVersion, string TorchSharpVersion,
    IReadOnlyList<string>? VectorExtensions = null)
{
    public static MachineInfo Current(int torchThreads) => new(
        RuntimeInformation.OSDescription,
        CpuName(),
        Environment.ProcessorCount,
        torchThreads,
        RuntimeInformation.FrameworkDescription,
        typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "unknown",
        CpuExtensions());

    /// <summary>The vector extensions in a /proc/cpuinfo "flags" line that matter to libtorch's kernels, in a fixed order.</summary>
    public static IReadOnlyList<string> VectorExtensionsOf(string flagsLine)
    {
        ArgumentNullException.ThrowIfNull(flagsLine);
        var flags = flagsLine.Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        return [.. new[] { "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile" }.Where(flags.Contains)];
    }

    /// <summary>This machine's vector extensions that matter to libtorch (empty where /proc/cpuinfo cannot be read).</summary>
    public static IReadOnlyList<string> CpuExtensions()
    {
        try
        {
            var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) : null;
            return line is null ? [] : VectorExtensionsOf(line);
        }
        catch (IOException)
        {
            return [];
        }
    }

    private static string CpuName()
    {
        try
        {
            var line = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                : null;
            return line?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }
}

/// <summary>What a training run did: its options, data, code, machine, and per-epoch results.</summary>
public sealed record RunRecord(
    string RunId,
    TrainingOptions Options,
    string Dataset,
    IReadOnlyDictionary<string, string> DatasetDigests,
    int TrainImages,
    int ValidationImages,
    string CodeVersion,
    MachineInfo Machine,
    DateTimeOffset StartedUtc,
    DateTimeOffset? FinishedUtc,
    IReadOnlyList<EpochRecord> Epochs,
    int Resumes,
    double? TestAccuracy,
    double? TestLoss,
    /// <summary>Epoch whose weights were kept (best robust validation accuracy); null when the last epoch is kept.</summary>
    int? SelectedEpoch = null,
    double? BestRobustValidationAccuracy = null,
    /// <summary>Epochs where robust validation accuracy fell more than 20 points below the best so far (catastrophic overfitting).</summary>
    IReadOnlyList<int>? CollapsedEpochs = null,
    /// <summary>The differential-privacy guarantee of a DP-SGD run; null for ordinary training.</summary>
    PrivacyRecord? Privacy = null)
{
    /// <summary>The held-out robust accuracy of every epoch that measured one, in epoch order.</summary>
    public IReadOnlyList<(int Epoch, double RobustValidationAccuracy)> RobustValidationByEpoch() =>
        Epochs.Where(e => e.RobustValidationAccuracy is not null).Select(e => (e.Epoch, e.RobustValidationAccuracy!.Value)).ToList();
}

/// <summary>
/// The commit of the code that runs. From a checkout (the assembly sits in a git work tree, as under ./securemnist and the tests), git
/// says, with "+modified" for uncommitted changes; the working folder's repository plays no part. An installed tool (outside any work
/// tree) reports the commit stamped into the assembly at build (SourceRevisionId, in the informational version), else "unknown".
/// </summary>
public static class CodeVersion
{
    public static string Current() =>
        Checkout(AppContext.BaseDirectory) is { } checkout ? FromGit(checkout) : Stamped(typeof(CodeVersion).Assembly) ?? "unknown";

    /// <summary>
    /// The commit in an assembly's informational version ("1.0.0+COMMIT"), when the build stamped one; "COMMIT+modified" when it was built
    /// from a work tree with uncommitted changes (stamped "1.0.0+COMMIT.modified").
    /// </summary>
    public static string? Stamped(System.Reflection.Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        return FromInformationalVersion(assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion);
    }

    /// <summary>The commit in an informational version string, with "+modified" for a build from a modified work tree; null when there is none.</summary>
    public static string? FromInformationalVersion(string? version)
    {
        var plus = version?.IndexOf('+', StringComparison.Ordinal) ?? -1;
        if (plus < 0) return null;
        var stamp = version![(plus + 1)..];
        const string modified = ".modified";
        var dirty = stamp.EndsWith(modified, StringComparison.Ordinal);
        var commit = dirty ? stamp[..^modified.Length] : stamp;
        return commit is { Length: 40 } && commit.All(char.IsAsciiHexDigitLower) ? dirty ? commit + "+modified" : commit : null;
    }

    /// <summary>
    /// The root of the git work tree of this project holding <paramref name="directory"/> (.git is a folder in a clone, a file in a
    /// worktree), or null. The nearest work tree counts only if it holds the project's solution file: a tool installed under a home folder
    /// that is some other repository (dotfiles) must not report that repository's commit.
    /// </summary>
    public static string? Checkout(string directory)
    {
        for (var current = new DirectoryInfo(directory); current is not null; current = current.Parent)
            if (Path.Exists(Path.Combine(current.FullName, ".git")))
                return File.Exists(Path.Combine(current.FullName, SolutionFile)) ? current.FullName : null;
        return null;
    }

    /// <summary>The file that marks a work tree as this project's.</summary>
    public const string SolutionFile = "SecureMnist.slnx";

    private static string FromGit(string checkout)
    {
        try
        {
            var start = new ProcessStartInfo("git", ["-C", checkout, "rev-parse", "HEAD"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start);
            if (process is null) return "unknown";
            var commit = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            if (process.ExitCode != 0 || commit.Length != 40) return "unknown";
            using var status = Process.Start(new ProcessStartInfo("git", ["-C", checkout, "status", "--porcelain", "--untracked-files=no"]) { RedirectStandardOutput = true, RedirectStandardError = true });
            var dirty = status is not null && status.StandardOutput.ReadToEnd().Trim().Length > 0;
            status?.WaitForExit();
            return dirty ? commit + "+modified" : commit;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}
