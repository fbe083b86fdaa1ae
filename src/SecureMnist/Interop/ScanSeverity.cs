namespace SecureMnist.Interop;

/// <summary>How bad a <c>scan</c> finding is, in ModelScan's four levels.</summary>
public enum ScanSeverity
{
    /// <summary>The file is refused for its format, with nothing unsafe found in it (a bare pickle or a legacy file of allowlisted globals).</summary>
    Low,
    /// <summary>A global outside the allowlist whose effect is not known to be harmful.</summary>
    Medium,
    /// <summary>Exploitable without running code (network access, data read from outside the model's folder), or a file the scanner could not show safe.</summary>
    High,
    /// <summary>Runs code when loaded: eval, exec, os, subprocess and the like in a pickle, or a native custom-op library in ONNX.</summary>
    Critical,
}

/// <summary>One reason <c>scan</c> refuses a file, with its severity.</summary>
public sealed record ScanFinding(ScanSeverity Severity, string Message)
{
    /// <summary>The pickle global this finding is about, or null for a finding about the file's structure or format.</summary>
    public PickleGlobal? Global { get; init; }
}

/// <summary>Severities of pickle globals, after ModelScan's lists (protectai/modelscan, settings.py): what can execute code is critical, what
/// reaches the network is high. A global outside the allowlist and outside both lists is medium: it is refused, but not known to be harmful.</summary>
public static class ScanSeverities
{
    private static readonly string[] CodeBuiltins = ["eval", "compile", "getattr", "apply", "exec", "open", "breakpoint", "__import__"];
    private static readonly string[] CodeModules = ["runpy", "os", "nt", "posix", "socket", "subprocess", "sys", "pty", "pickle", "_pickle"];
    private static readonly string[] NetworkModules = ["webbrowser", "httplib", "http.client", "requests.api", "aiohttp.client"];

    public static ScanSeverity OfGlobal(string module, string name)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(name);
        if (module is "builtins" or "__builtin__" && CodeBuiltins.Contains(name, StringComparer.Ordinal)) return ScanSeverity.Critical;
        if (module == "operator" && name == "attrgetter") return ScanSeverity.Critical;
        if (Within(module, CodeModules)) return ScanSeverity.Critical;
        if (Within(module, NetworkModules)) return ScanSeverity.High;
        return ScanSeverity.Medium;
    }

    /// <summary>The severities' names, least severe first: what <c>scan --fail-on</c> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = Enum.GetValues<ScanSeverity>().Select(Name).ToArray();

    /// <summary>Parses a severity name (any case), naming the allowed values when it is none of them.</summary>
    public static ScanSeverity Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var name = text.Trim().ToLowerInvariant();
        foreach (var severity in Enum.GetValues<ScanSeverity>())
            if (Name(severity) == name) return severity;
        throw new ArgumentException($"'{text}' is not a severity; use {string.Join(", ", Names.Take(Names.Count - 1))} or {Names[^1]}");
    }

    public static string Name(ScanSeverity severity) => severity.ToString().ToLowerInvariant();

    // A module or any of its submodules: "os" covers "os.path", never "osx".
    private static bool Within(string module, string[] roots) =>
        roots.Any(root => module == root || module.StartsWith(root + ".", StringComparison.Ordinal));
}
