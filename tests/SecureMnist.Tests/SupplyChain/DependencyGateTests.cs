using SecureMnist.Security;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.SupplyChain;

/// <summary>The offline vulnerable-package gate (deps audit) and the SBOM, over the repository's real lock files.</summary>
public sealed class DependencyGateTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static IReadOnlyList<string> RepositoryLockFiles() =>
        Directory.GetFiles(Path.Combine(TestPaths.RepositoryRoot, "src"), "packages.lock.json", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal)).ToList();

    private string LockFileWith(string package, string version, string type = "Transitive")
    {
        var path = Path.Combine(directory, "packages.lock.json");
        File.WriteAllText(path, $$"""
            { "version": 2, "dependencies": { "net10.0": {
              "Some.Library": { "type": "Direct", "requested": "[1.0.0, )", "resolved": "1.0.0", "contentHash": "AAAA", "dependencies": { "{{package}}": "{{version}}" } },
              "{{package}}": { "type": "{{type}}", "resolved": "{{version}}", "contentHash": "AAAA" }
            } } }
            """);
        return path;
    }

    [Fact]
    public void A_vulnerable_transitive_package_fails_the_gate()
    {
        var (exitCode, output, error) = CliProcess.Run(TestPaths.RepositoryRoot, "deps", "audit", "--lock-file", LockFileWith("Newtonsoft.Json", "12.0.1"));
        Assert.True(exitCode == 1, output + error);
        Assert.Contains("GHSA-5crp-9r3c-p9vr", output);
    }

    [Fact]
    public void The_fixed_version_passes_and_so_does_the_tool_itself()
    {
        var advisories = PackageAdvisories.Load(Path.Combine(TestPaths.RepositoryRoot, "build", "advisories.json"));
        Assert.Empty(PackageAdvisories.Check(CycloneDxSbom.ReadLockFiles([LockFileWith("Newtonsoft.Json", "13.0.1")]), advisories));
        Assert.Empty(PackageAdvisories.Check(CycloneDxSbom.ReadLockFiles(RepositoryLockFiles()), advisories));
    }

    [Theory]
    [InlineData("12.0.1", "(, 13.0.1)", true)]
    [InlineData("13.0.1", "(, 13.0.1)", false)]
    [InlineData("13.0.1-beta1", "(, 13.0.1)", true)]
    [InlineData("4.5.1", "[4.0.0, 4.5.1)", false)]
    [InlineData("4.0.0", "[4.0.0, 4.5.1)", true)]
    [InlineData("3.9", "[4.0.0, 4.5.1)", false)]
    [InlineData("8.0.4", "[8.0.0, 8.0.5)", true)]
    [InlineData("9.0.0", "[8.0.0, ]", true)]
    public void Version_intervals_follow_nuget_notation(string version, string range, bool vulnerable) =>
        Assert.Equal(vulnerable, PackageAdvisories.InRange(version, range));

    [Fact]
    public void The_sbom_lists_every_locked_package_with_purl_hash_and_graph()
    {
        var components = CycloneDxSbom.ReadLockFiles(RepositoryLockFiles());
        var document = CycloneDxSbom.Create("1.0.0+abc", components);
        Assert.Equal("CycloneDX", (string?)document["bomFormat"]);
        Assert.Equal("1.5", (string?)document["specVersion"]);
        var listed = document["components"]!.AsArray().Select(c => (string)c!["purl"]!).ToHashSet();
        Assert.Contains("pkg:nuget/TorchSharp@0.107.0", listed);
        Assert.Contains(listed, p => p.StartsWith("pkg:nuget/NSec.Cryptography@", StringComparison.Ordinal));
        Assert.Contains(listed, p => p.StartsWith("pkg:nuget/libtorch-cpu-linux-x64@", StringComparison.Ordinal));
        Assert.All(document["components"]!.AsArray(), c => Assert.Equal(128, ((string)c!["hashes"]![0]!["content"]!).Length));
        var dependencies = document["dependencies"]!.AsArray();
        Assert.All(dependencies.SelectMany(d => d!["dependsOn"]!.AsArray()), d => Assert.Contains((string)d!, listed));
        Assert.Equal("pkg:generic/securemnist@1.0.0%2Babc", (string?)document["metadata"]!["component"]!["purl"]);
    }
}
