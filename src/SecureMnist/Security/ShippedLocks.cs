using System.Reflection;

namespace SecureMnist.Security;

/// <summary>
/// The supply-chain inputs of the shipped tool: the NuGet lock files of its projects and the advisory snapshot. In a checkout they are
/// read from the repository (src/*/packages.lock.json, build/advisories.json); anywhere else, as an installed tool runs, from the copies
/// built into this assembly, which are the files the tool was built with.
/// </summary>
public static class ShippedLocks
{
    private const string LockPrefix = "SecureMnist.Shipped.lock/";
    private const string AdvisoriesResource = "SecureMnist.Shipped.build/advisories.json";

    /// <summary>A lock file or snapshot by name (a path, or "built-in:NAME") and content.</summary>
    public sealed record Input(string Name, byte[] Bytes);

    /// <summary>The repository's lock files when <paramref name="repositoryRoot"/> holds them, else the built-in copies.</summary>
    public static IReadOnlyList<Input> LockFiles(string? repositoryRoot)
    {
        if (repositoryRoot is not null && CycloneDxSbom.ShippedLockFiles(repositoryRoot) is { Count: > 0 } files)
            return [.. files.Select(f => new Input(f, File.ReadAllBytes(f)))];
        return [.. BuiltIn(name => name.StartsWith(LockPrefix, StringComparison.Ordinal))];
    }

    /// <summary>The repository's advisory snapshot when <paramref name="repositoryRoot"/> holds one, else the built-in copy.</summary>
    public static Input Advisories(string? repositoryRoot)
    {
        var path = repositoryRoot is null ? null : Path.Combine(repositoryRoot, "build", "advisories.json");
        if (path is not null && File.Exists(path)) return new Input(path, File.ReadAllBytes(path));
        return BuiltIn(name => name == AdvisoriesResource).Single();
    }

    private static IEnumerable<Input> BuiltIn(Func<string, bool> wanted)
    {
        var assembly = typeof(ShippedLocks).Assembly;
        foreach (var name in assembly.GetManifestResourceNames().Where(wanted).Order(StringComparer.Ordinal))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            yield return new Input($"built-in:{name["SecureMnist.Shipped.".Length..]}", buffer.ToArray());
        }
    }
}
