using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecureMnist.Security;

/// <summary>
/// The tool's software bill of materials in CycloneDX 1.5 JSON, built from the NuGet lock files of the shipped projects
/// (src/*/packages.lock.json): every package, direct or transitive, with its purl, the SHA-512 NuGet recorded for it,
/// and the dependency graph. Lock files are what restore enforces in CI, so the SBOM lists exactly what is built.
/// </summary>
public static class CycloneDxSbom
{
    public sealed record Component(string Name, string Version, string Sha512Hex, bool Direct, IReadOnlyList<string> DependsOn)
    {
        public string Purl => $"pkg:nuget/{Name}@{Version}";
    }

    /// <summary>The lock files of the shipped projects: every packages.lock.json under ROOT/src, outside build output.</summary>
    public static IReadOnlyList<string> ShippedLockFiles(string repositoryRoot)
    {
        var source = Path.Combine(repositoryRoot, "src");
        return Directory.Exists(source)
            ? Directory.GetFiles(source, "packages.lock.json", SearchOption.AllDirectories)
                .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
            : [];
    }

    public static IReadOnlyList<Component> ReadLockFiles(IEnumerable<string> lockFiles)
    {
        ArgumentNullException.ThrowIfNull(lockFiles);
        return ReadLockFiles(lockFiles.Select(file => (file, File.ReadAllBytes(file))));
    }

    /// <summary>Lock files given as bytes with a name for messages (the copies built into the tool, when it runs outside a checkout).</summary>
    public static IReadOnlyList<Component> ReadLockFiles(IEnumerable<(string Name, byte[] Bytes)> lockFiles)
    {
        ArgumentNullException.ThrowIfNull(lockFiles);
        var components = new SortedDictionary<string, Component>(StringComparer.OrdinalIgnoreCase);
        foreach (var (file, bytes) in lockFiles)
        {
            try
            {
                ReadLockFile(bytes, components);
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{file} is not a NuGet lock file (packages.lock.json): {e.Message}");
            }
        }
        return components.Values.ToList();
    }

    private static void ReadLockFile(byte[] bytes, SortedDictionary<string, Component> components)
    {
        {
            using var document = JsonDocument.Parse(bytes);
            foreach (var framework in document.RootElement.GetProperty("dependencies").EnumerateObject())
            {
                var resolved = framework.Value.EnumerateObject()
                    .Where(p => p.Value.TryGetProperty("resolved", out _))
                    .ToDictionary(p => p.Name, p => p.Value.GetProperty("resolved").GetString()!, StringComparer.OrdinalIgnoreCase);
                foreach (var package in framework.Value.EnumerateObject())
                {
                    var type = package.Value.GetProperty("type").GetString();
                    if (type == "Project" || !package.Value.TryGetProperty("resolved", out var version)) continue;
                    var dependsOn = package.Value.TryGetProperty("dependencies", out var dependencies)
                        ? dependencies.EnumerateObject().Where(d => resolved.ContainsKey(d.Name)).Select(d => $"pkg:nuget/{d.Name}@{resolved[d.Name]}").ToList()
                        : [];
                    var hash = Convert.ToHexStringLower(Convert.FromBase64String(package.Value.GetProperty("contentHash").GetString()!));
                    var key = $"{package.Name}@{version.GetString()}";
                    var direct = type == "Direct";
                    if (components.TryGetValue(key, out var existing)) direct |= existing.Direct;
                    components[key] = new Component(package.Name, version.GetString()!, hash, direct, dependsOn);
                }
            }
        }
    }

    /// <summary>The SBOM document; serial number and timestamp vary per run, everything else follows from the lock files.</summary>
    public static JsonObject Create(string toolVersion, IReadOnlyList<Component> components)
    {
        ArgumentNullException.ThrowIfNull(components);
        const string toolRef = "pkg:generic/securemnist";
        return new JsonObject
        {
            ["bomFormat"] = "CycloneDX",
            ["specVersion"] = "1.5",
            ["serialNumber"] = $"urn:uuid:{Guid.NewGuid()}",
            ["version"] = 1,
            ["metadata"] = new JsonObject
            {
                ["timestamp"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
                ["component"] = new JsonObject
                {
                    ["type"] = "application",
                    ["bom-ref"] = toolRef,
                    ["name"] = "securemnist",
                    ["version"] = toolVersion,
                    ["purl"] = $"{toolRef}@{Uri.EscapeDataString(toolVersion)}",
                },
            },
            ["components"] = new JsonArray(components.Select(c => (JsonNode)new JsonObject
            {
                ["type"] = "library",
                ["bom-ref"] = c.Purl,
                ["name"] = c.Name,
                ["version"] = c.Version,
                ["purl"] = c.Purl,
                ["scope"] = "required",
                ["hashes"] = new JsonArray(new JsonObject { ["alg"] = "SHA-512", ["content"] = c.Sha512Hex }),
                ["properties"] = new JsonArray(new JsonObject { ["name"] = "securemnist:dependency", ["value"] = c.Direct ? "direct" : "transitive" }),
            }).ToArray()),
            ["dependencies"] = new JsonArray(
            [
                new JsonObject { ["ref"] = toolRef, ["dependsOn"] = new JsonArray(components.Where(c => c.Direct).Select(c => (JsonNode)c.Purl).ToArray()) },
                .. components.Select(c => (JsonNode)new JsonObject { ["ref"] = c.Purl, ["dependsOn"] = new JsonArray(c.DependsOn.Select(d => (JsonNode)d).ToArray()) }),
            ]),
        };
    }
}
