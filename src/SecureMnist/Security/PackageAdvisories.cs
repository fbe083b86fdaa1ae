using System.Text.Json;

namespace SecureMnist.Security;

/// <summary>A known vulnerability: which package, which versions (NuGet interval notation), how bad.</summary>
public sealed record PackageAdvisory(string Id, string Package, string Vulnerable, string Severity, string Summary);

/// <summary>A package in use that an advisory covers.</summary>
public sealed record AdvisoryHit(CycloneDxSbom.Component Component, PackageAdvisory Advisory);

/// <summary>
/// The offline half of the vulnerable-package gate: the packages the lock files pin, checked against an advisory
/// snapshot kept in the repository, for package sources that serve no advisory data to NuGetAudit.
/// </summary>
public static class PackageAdvisories
{
    public static IReadOnlyList<PackageAdvisory> Load(string path) => Parse(File.ReadAllBytes(path), path);

    /// <summary>An advisory snapshot given as bytes, named <paramref name="path"/> in messages.</summary>
    public static IReadOnlyList<PackageAdvisory> Parse(byte[] bytes, string path)
    {
        using var document = JsonDocument.Parse(bytes);
        var advisories = new List<PackageAdvisory>();
        foreach (var entry in document.RootElement.GetProperty("advisories").EnumerateArray())
        {
            string Text(string name) => entry.GetProperty(name).GetString() ?? throw new InvalidDataException($"{path}: an advisory lacks '{name}'");
            var advisory = new PackageAdvisory(Text("id"), Text("package"), Text("vulnerable"), Text("severity"), Text("summary"));
            _ = ParseRange(advisory.Vulnerable);
            advisories.Add(advisory);
        }
        return advisories;
    }

    public static IReadOnlyList<AdvisoryHit> Check(IEnumerable<CycloneDxSbom.Component> components, IReadOnlyList<PackageAdvisory> advisories) =>
        components.SelectMany(c => advisories
                .Where(a => string.Equals(a.Package, c.Name, StringComparison.OrdinalIgnoreCase) && InRange(c.Version, a.Vulnerable))
                .Select(a => new AdvisoryHit(c, a)))
            .ToList();

    /// <summary>NuGet interval notation: "[1.0, 2.0)", "(, 13.0.1)", "[4.0.0, ]".</summary>
    public static bool InRange(string version, string range)
    {
        var (lower, lowerInclusive, upper, upperInclusive) = ParseRange(range);
        var v = ParseVersion(version);
        if (lower is not null)
        {
            var c = Compare(v, lower.Value);
            if (c < 0 || (c == 0 && !lowerInclusive)) return false;
        }
        if (upper is not null)
        {
            var c = Compare(v, upper.Value);
            if (c > 0 || (c == 0 && !upperInclusive)) return false;
        }
        return true;
    }

    private static ((Version, bool)? Lower, bool LowerInclusive, (Version, bool)? Upper, bool UpperInclusive) ParseRange(string range)
    {
        var text = range.Trim();
        if (text.Length < 3 || text[0] is not ('[' or '(') || text[^1] is not (']' or ')') || !text.Contains(','))
            throw new InvalidDataException($"'{range}' is not a NuGet version interval such as [1.0, 2.0)");
        var parts = text[1..^1].Split(',');
        if (parts.Length != 2) throw new InvalidDataException($"'{range}' is not a NuGet version interval");
        (Version, bool)? Bound(string part) => string.IsNullOrWhiteSpace(part) ? null : ParseVersion(part.Trim());
        return (Bound(parts[0]), text[0] == '[', Bound(parts[1]), text[^1] == ']');
    }

    /// <summary>A version and whether it is a prerelease (which sorts before the release).</summary>
    private static (Version Number, bool Prerelease) ParseVersion(string text)
    {
        var core = text.Split('+')[0];
        var dash = core.IndexOf('-', StringComparison.Ordinal);
        var number = dash < 0 ? core : core[..dash];
        if (!Version.TryParse(number.Contains('.', StringComparison.Ordinal) ? number : number + ".0", out var version))
            throw new InvalidDataException($"'{text}' is not a version");
        return (version, dash >= 0);
    }

    private static int Compare((Version Number, bool Prerelease) a, (Version Number, bool Prerelease) b)
    {
        var c = Normalize(a.Number).CompareTo(Normalize(b.Number));
        return c != 0 ? c : a.Prerelease == b.Prerelease ? 0 : a.Prerelease ? -1 : 1;
    }

    private static Version Normalize(Version v) => new(v.Major, v.Minor, Math.Max(v.Build, 0), Math.Max(v.Revision, 0));
}
