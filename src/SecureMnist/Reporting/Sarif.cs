using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecureMnist.Reporting;

/// <summary>A kind of finding a tool reports (a SARIF reportingDescriptor): a stable id, a name, one line of description and its level.</summary>
public sealed record SarifRule(string Id, string Name, string Description, SarifLevel DefaultLevel);

/// <summary>SARIF's result levels.</summary>
public enum SarifLevel { Error, Warning, Note }

/// <summary>One finding: its rule, level, message and where it is (a file, and optionally a byte offset in it).</summary>
public sealed record SarifResult(string RuleId, SarifLevel Level, string Message, string ArtifactPath, long? ByteOffset = null);

/// <summary>
/// Static Analysis Results Interchange Format 2.1.0 logs (OASIS), the format code-scanning UIs read: one run of one tool with its rules
/// and results. Paths are written as URIs relative to the working folder where they lie under it, else as absolute file URIs.
/// </summary>
public static class Sarif
{
    public const string Version = "2.1.0";
    public const string SchemaUri = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

    public static JsonObject Log(string toolVersion, IReadOnlyList<SarifRule> rules, IReadOnlyList<SarifResult> results, string? baseDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(results);
        var root = Path.GetFullPath(baseDirectory ?? Directory.GetCurrentDirectory());
        var ruleIndex = rules.Select((r, i) => (r.Id, i)).ToDictionary(p => p.Id, p => p.i);
        foreach (var result in results)
            if (!ruleIndex.ContainsKey(result.RuleId)) throw new ArgumentException($"result names rule {result.RuleId}, which the log does not declare");
        var driver = new JsonObject
        {
            ["name"] = "securemnist",
            ["version"] = toolVersion,
            ["informationUri"] = "https://github.com/securemnist/securemnist",
            ["rules"] = new JsonArray([.. rules.Select(r => (JsonNode)new JsonObject
            {
                ["id"] = r.Id,
                ["name"] = r.Name,
                ["shortDescription"] = new JsonObject { ["text"] = r.Description },
                ["defaultConfiguration"] = new JsonObject { ["level"] = Level(r.DefaultLevel) },
            })]),
        };
        var run = new JsonObject
        {
            ["tool"] = new JsonObject { ["driver"] = driver },
            ["results"] = new JsonArray([.. results.Select(r => (JsonNode)new JsonObject
            {
                ["ruleId"] = r.RuleId,
                ["ruleIndex"] = ruleIndex[r.RuleId],
                ["level"] = Level(r.Level),
                ["message"] = new JsonObject { ["text"] = r.Message },
                ["locations"] = new JsonArray(new JsonObject
                {
                    ["physicalLocation"] = Location(r, root),
                }),
            })]),
        };
        return new JsonObject { ["$schema"] = SchemaUri, ["version"] = Version, ["runs"] = new JsonArray(run) };
    }

    public static void Save(string path, JsonObject log)
    {
        ArgumentNullException.ThrowIfNull(log);
        IO.AtomicFile.WriteAllText(path, log.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Level(SarifLevel level) => level switch
    {
        SarifLevel.Error => "error",
        SarifLevel.Warning => "warning",
        _ => "note",
    };

    private static JsonObject Location(SarifResult result, string root)
    {
        var full = Path.GetFullPath(result.ArtifactPath);
        var relative = Path.GetRelativePath(root, full);
        var uri = relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative)
            ? new Uri(full).AbsoluteUri
            : string.Join('/', relative.Split(Path.DirectorySeparatorChar).Select(Uri.EscapeDataString));
        var location = new JsonObject { ["artifactLocation"] = new JsonObject { ["uri"] = uri } };
        if (result.ByteOffset is { } offset) location["region"] = new JsonObject { ["byteOffset"] = offset, ["byteLength"] = 1 };
        return location;
    }
}
