using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using SecureMnist.Reporting;
using SecureMnist.Tests.Cli;
using SecureMnist.Tests.Interop;

namespace SecureMnist.Tests.Reporting;

/// <summary>SARIF from scan, deps audit and assess, validated against the official SARIF 2.1.0 schema (vendored in tests/SecureMnist.Tests/Schemas).</summary>
public sealed class SarifTests
{
    private static readonly Lazy<JsonSchema> Schema = new(() =>
        JsonSchema.FromText(File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, "tests", "SecureMnist.Tests", "Schemas", "sarif-schema-2.1.0.json"))));

    private static JsonElement Valid(string path)
    {
        var document = JsonDocument.Parse(File.ReadAllText(path));
        var evaluation = Schema.Value.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        var errors = evaluation.Details?.Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Key} {e.Value}")) ?? [];
        Assert.True(evaluation.IsValid, $"{path} is not valid SARIF 2.1.0: {string.Join("; ", errors.Take(10))}");
        return document.RootElement;
    }

    [Fact]
    public void The_schema_refuses_what_is_not_sarif()
    {
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "bad.sarif");
        File.WriteAllText(path, """{"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}""");
        var document = JsonDocument.Parse(File.ReadAllText(path));
        Assert.False(Schema.Value.Evaluate(document.RootElement).IsValid); // the driver needs a name
    }

    [Fact]
    public void Scan_writes_each_disallowed_global_as_a_result_at_its_byte()
    {
        var directory = TestPaths.NewScratchDirectory();
        var evil = Path.Combine(directory, "evil.pkl");
        var bytes = new PickleWriter().Global("os", "system").Unicode("true").Raw("\x85").Raw("R").Stop().ToArray();
        File.WriteAllBytes(evil, bytes);
        var globalOpcode = bytes.AsSpan().IndexOf("cos\nsystem"u8);
        var sarif = Path.Combine(directory, "scan.sarif");
        var (exit, _, error) = CliProcess.Run(directory, "scan", evil, "--sarif", sarif);
        Assert.True(exit == 1, error);
        var result = Valid(sarif).GetProperty("runs")[0].GetProperty("results")[0];
        Assert.Equal("SM1001", result.GetProperty("ruleId").GetString());
        Assert.Equal("error", result.GetProperty("level").GetString());
        Assert.Contains("os.system", result.GetProperty("message").GetProperty("text").GetString(), StringComparison.Ordinal);
        var location = result.GetProperty("locations")[0].GetProperty("physicalLocation");
        Assert.Equal("evil.pkl", location.GetProperty("artifactLocation").GetProperty("uri").GetString());
        Assert.Equal(globalOpcode, location.GetProperty("region").GetProperty("byteOffset").GetInt64());

        var safe = Path.Combine(directory, "tensor.safetensors");
        File.WriteAllBytes(safe, SecureMnist.Security.Safetensors.Serialize([SecureMnist.Security.SafetensorsTensor.Float32("w", [1], [1f])]));
        Assert.Equal(0, CliProcess.Run(directory, "scan", safe, "--sarif", sarif).ExitCode);
        Assert.Equal(0, Valid(sarif).GetProperty("runs")[0].GetProperty("results").GetArrayLength());
    }

    [Fact]
    public void Deps_audit_writes_each_vulnerable_package_under_its_advisory()
    {
        var directory = TestPaths.NewScratchDirectory();
        var lockFile = Path.Combine(directory, "packages.lock.json");
        File.WriteAllText(lockFile, """
            {"version": 1, "dependencies": {"net10.0": {"Some.Package": {"type": "Transitive", "resolved": "1.0.0", "contentHash": "AAAA"}}}}
            """);
        var advisories = Path.Combine(directory, "advisories.json");
        File.WriteAllText(advisories, """
            {"advisories": [{"id": "GHSA-test-0001-0001", "package": "Some.Package", "vulnerable": "[1.0.0, 1.0.1)", "severity": "high", "summary": "a test advisory"}]}
            """);
        var sarif = Path.Combine(directory, "audit.sarif");
        var (exit, output, error) = CliProcess.Run(directory, "deps", "audit", "--lock-file", lockFile, "--advisories", advisories, "--sarif", sarif);
        Assert.True(exit == 1, output + error);
        var run = Valid(sarif).GetProperty("runs")[0];
        Assert.Equal("GHSA-test-0001-0001", run.GetProperty("tool").GetProperty("driver").GetProperty("rules")[0].GetProperty("id").GetString());
        var result = run.GetProperty("results")[0];
        Assert.Equal("error", result.GetProperty("level").GetString());
        Assert.Contains("Some.Package 1.0.0", result.GetProperty("message").GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Assess_writes_gate_failures_and_unmeasured_evidence()
    {
        var directory = TestPaths.NewScratchDirectory();
        var sarif = Path.Combine(directory, "assess.sarif");
        var (exit, _, error) = CliProcess.Run(directory, "assess", "--stages", "data", "--fail-on", "data.train_images<100000", "--sarif", sarif);
        Assert.True(exit == 1, error);
        var results = Valid(sarif).GetProperty("runs")[0].GetProperty("results").EnumerateArray().ToList();
        Assert.Single(results, r => r.GetProperty("ruleId").GetString() == "SM3001");
        Assert.Contains(results, r => r.GetProperty("ruleId").GetString() == "SM3002" && r.GetProperty("level").GetString() == "note");
    }
}
