using System.Text.Json.Nodes;
using SecureMnist.Security;

namespace SecureMnist.Assessment;

/// <summary>The NuGet packages the tool ships (from the lock files) against the offline advisory snapshot.</summary>
public sealed class DependenciesStage : AssessmentStage
{
    public static readonly MetricKey Packages = new("dependencies.packages");
    public static readonly MetricKey Advisories = new("dependencies.advisories");
    public static readonly MetricKey Vulnerable = new("dependencies.vulnerable");

    public override string Name => "dependencies";
    public override IReadOnlyList<MetricKey> MetricKeys => [Packages, Advisories, Vulnerable];

    public override object Inputs(StageContext context) =>
        new { lockFiles = LockFiles(context).Select(File.ReadAllText).ToList(), advisories = AdvisoriesPath(context) is { } a ? File.ReadAllText(a) : "" };

    private static string? AdvisoriesPath(StageContext context) =>
        context.Options.RepositoryRoot is { } root && File.Exists(Path.Combine(root, "build", "advisories.json")) ? Path.Combine(root, "build", "advisories.json") : null;

    private static IReadOnlyList<string> LockFiles(StageContext context) => context.Options.RepositoryRoot is { } root ? CycloneDxSbom.ShippedLockFiles(root) : [];

    public override StageOutput Run(StageContext context, string directory)
    {
        var lockFiles = LockFiles(context);
        if (lockFiles.Count == 0 || AdvisoriesPath(context) is not { } advisoriesPath)
            return new(new Dictionary<string, Metric>(), new Dictionary<string, string>(), JsonValue.Create("no repository checkout here: lock files and advisories not found"));
        var components = CycloneDxSbom.ReadLockFiles(lockFiles);
        var advisories = PackageAdvisories.Load(advisoriesPath);
        var hits = PackageAdvisories.Check(components, advisories);
        return new(new Dictionary<string, Metric>
        {
            [Packages.Name] = Metric.Count(components.Count, "NuGet packages the tool ships, transitive ones included"),
            [Advisories.Name] = Metric.Count(advisories.Count, "advisories in the offline snapshot"),
            [Vulnerable.Name] = Metric.Count(hits.Count, "packages with a known advisory"),
        }, new Dictionary<string, string>());
    }
}
