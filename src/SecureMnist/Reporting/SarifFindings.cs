using System.Text.Json.Nodes;
using SecureMnist.Assessment;
using SecureMnist.Interop;
using SecureMnist.Security;

namespace SecureMnist.Reporting;

/// <summary>The tool's findings as SARIF: a model file scan, the package audit and an assessment's gate.</summary>
public static class SarifFindings
{
    public static SarifRule UnsafeGlobal { get; } = new("SM1001", "unsafe-pickle-global", "A pickle references a global outside the allowlist: loading it could run code", SarifLevel.Error);
    public static SarifRule UnsafeFile { get; } = new("SM1002", "unsafe-model-file", "The model file is not safe to load", SarifLevel.Error);
    public static SarifRule UnknownFormat { get; } = new("SM1003", "unsupported-model-format", "The file is not a model format the scanner knows", SarifLevel.Note);
    public static SarifRule GateCondition { get; } = new("SM3001", "assessment-gate", "A --fail-on condition on the assessment's metrics holds", SarifLevel.Error);
    public static SarifRule NotMeasured { get; } = new("SM3002", "evidence-not-measured", "A threat's evidence was not measured in this run", SarifLevel.Note);

    /// <summary>scan: each disallowed global (with its byte offset in a plain pickle), else the verdict of an unsafe or unknown file.</summary>
    public static JsonObject Scan(ModelFileScan scan, string toolVersion)
    {
        ArgumentNullException.ThrowIfNull(scan);
        var results = new List<SarifResult>();
        var plainPickle = scan.Kind is ModelFileKind.Pickle or ModelFileKind.PyTorchLegacy;
        // One result per finding, rated as scan rated it: a global outside the allowlist (located in a bare pickle), or a problem with the file.
        foreach (var finding in scan.Findings)
        {
            var severity = $"(severity {ScanSeverities.Name(finding.Severity)})";
            results.Add(finding.Global is { } global
                ? new SarifResult(UnsafeGlobal.Id, LevelOf(finding.Severity),
                    $"{scan.KindDescription} references {global.FullName} at pickle byte {global.Offset}, which is not allowlisted {severity}", scan.Path, plainPickle ? global.Offset : null)
                : new SarifResult(UnsafeFile.Id, LevelOf(finding.Severity), $"{finding.Message} {severity}", scan.Path));
        }
        if (!scan.SafeToLoad && results.Count == 0)
            results.Add(scan.Kind == ModelFileKind.Unknown
                ? new SarifResult(UnknownFormat.Id, SarifLevel.Note, scan.Verdict, scan.Path)
                : new SarifResult(UnsafeFile.Id, SarifLevel.Error, scan.Verdict, scan.Path));
        return Sarif.Log(toolVersion, [UnsafeGlobal, UnsafeFile, UnknownFormat], results);

        // Critical and high findings are errors, medium ones warnings, low ones (refused for the format alone) notes.
        static SarifLevel LevelOf(ScanSeverity severity) => severity switch
        {
            ScanSeverity.Critical or ScanSeverity.High => SarifLevel.Error,
            ScanSeverity.Medium => SarifLevel.Warning,
            _ => SarifLevel.Note,
        };
    }

    /// <summary>deps audit: one rule per advisory that hits, one result per vulnerable package, located at the lock file.</summary>
    public static JsonObject Advisories(IReadOnlyList<AdvisoryHit> hits, string lockFile, string toolVersion)
    {
        ArgumentNullException.ThrowIfNull(hits);
        static SarifLevel LevelOf(string severity) => severity.ToUpperInvariant() switch
        {
            "CRITICAL" or "HIGH" => SarifLevel.Error,
            "MODERATE" or "MEDIUM" => SarifLevel.Warning,
            _ => SarifLevel.Note,
        };
        var rules = hits.Select(h => h.Advisory).DistinctBy(a => a.Id)
            .Select(a => new SarifRule(a.Id, $"vulnerable-{a.Package.ToLowerInvariant()}", a.Summary, LevelOf(a.Severity))).ToList();
        var results = hits.Select(h => new SarifResult(h.Advisory.Id, LevelOf(h.Advisory.Severity),
            $"{h.Component.Name} {h.Component.Version} is vulnerable ({h.Advisory.Id}, {h.Advisory.Severity}, versions {h.Advisory.Vulnerable}): {h.Advisory.Summary}", lockFile)).ToList();
        return Sarif.Log(toolVersion, rules, results);
    }

    /// <summary>assess: each gate condition that holds (an error), and each threat evidence key the run did not measure (a note), at results.json.</summary>
    public static JsonObject Assessment(IReadOnlyList<GateFailure> failures, AssessmentResults results, string resultsPath, string toolVersion)
    {
        ArgumentNullException.ThrowIfNull(failures);
        ArgumentNullException.ThrowIfNull(results);
        var findings = failures.Select(f => new SarifResult(GateCondition.Id, SarifLevel.Error,
            double.IsNaN(f.Value) ? $"{f.Condition}: {f.Label}" : $"{f.Condition} holds: measured {f.Value:0.####} ({f.Label})", resultsPath)).ToList();
        var metrics = results.Metrics;
        foreach (var threat in ThreatModel.Threats)
            foreach (var key in threat.Evidence.Where(k => !metrics.Keys.Any(new MetricKey(k).Matches)))
                findings.Add(new SarifResult(NotMeasured.Id, SarifLevel.Note, $"{threat.Id} ({threat.Title}): {key} was not measured in the {results.Profile} profile", resultsPath));
        return Sarif.Log(toolVersion, [GateCondition, NotMeasured], findings);
    }
}
