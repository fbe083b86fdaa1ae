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

    public override object Inputs(StageContext context)
    {
        var root = context.Options.RepositoryRoot;
        return new
        {
            lockFiles = ShippedLocks.LockFiles(root).Select(f => System.Text.Encoding.UTF8.GetString(f.Bytes)).ToList(),
            advisories = System.Text.Encoding.UTF8.GetString(ShippedLocks.Advisories(root).Bytes),
        };
    }

    public override StageOutput Run(StageContext context, string directory)
    {
        // A checkout's files, or the copies built into the tool when it runs elsewhere.
        var lockFiles = ShippedLocks.LockFiles(context.Options.RepositoryRoot);
        var snapshot = ShippedLocks.Advisories(context.Options.RepositoryRoot);
        var components = CycloneDxSbom.ReadLockFiles(lockFiles.Select(f => (f.Name, f.Bytes)));
        var advisories = PackageAdvisories.Parse(snapshot.Bytes, snapshot.Name);
        var hits = PackageAdvisories.Check(components, advisories);
        return new(new Dictionary<string, Metric>
        {
            [Packages.Name] = Metric.Count(components.Count, "NuGet packages the tool ships, transitive ones included"),
            [Advisories.Name] = Metric.Count(advisories.Count, "advisories in the offline snapshot"),
            [Vulnerable.Name] = Metric.Count(hits.Count, "packages with a known advisory"),
        }, new Dictionary<string, string>());
    }
}
