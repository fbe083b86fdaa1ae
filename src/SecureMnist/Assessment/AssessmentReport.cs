using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.IO;

namespace SecureMnist.Assessment;

/// <summary>
/// A number the seeds report, quoted beside ours at the precision the seed gave it (<see cref="Decimals"/> decimals of a
/// percent: "100%" is 0, "97.2%" is 1); <see cref="HigherIsBetter"/> says which way "beats" points.
/// </summary>
public sealed record SeedFigure(string Metric, string What, double Value, int Decimals, string Source, bool HigherIsBetter)
{
    public string Formatted => (100 * Value).ToString("F" + Decimals, System.Globalization.CultureInfo.InvariantCulture) + "%";

    /// <summary>Whether ours is at least as good without rounding.</summary>
    public bool BeatenBy(double ours) => HigherIsBetter ? ours >= Value : ours <= Value;

    /// <summary>Whether ours, rounded to the seed's precision, is at least as good: a seed's "100%" may be anything from 99.5%.</summary>
    public bool ReproducedAtItsPrecisionBy(double ours)
    {
        var rounded = Math.Round(100 * ours, Decimals, MidpointRounding.AwayFromZero);
        var seed = Math.Round(100 * Value, Decimals, MidpointRounding.AwayFromZero);
        return HigherIsBetter ? rounded >= seed : rounded <= seed;
    }
}

/// <summary>Writes results.json, report.md and a self-contained report.html from an assessment's results, and docs/THREAT_MODEL.md from the threat model.</summary>
public static class AssessmentReport
{
    public static IReadOnlyList<SeedFigure> SeedFigures { get; } =
    [
        new("baseline.clean_accuracy", "clean test accuracy of the baseline CNN", 0.9939, 2, "seed 001", HigherIsBetter: true),
        new("baseline.clean_accuracy", "clean test accuracy of the baseline CNN", 0.9898, 2, "seed 000", HigherIsBetter: true),
        new("baseline.fgsm_accuracy", "baseline accuracy under FGSM (lower: the attack is at least as strong)", 0.307, 1, "seed 001", HigherIsBetter: false),
        new("baseline.fgsm_accuracy", "baseline accuracy under FGSM (lower: the attack is at least as strong)", 0.4365, 2, "seed 000", HigherIsBetter: false),
        new("poison.attack_success_rate", "backdoor attack success with 100 poisoned samples", 1.0, 0, "seed 000", HigherIsBetter: true),
        new("defense_fgsm.clean_accuracy", "FGSM-trained model: clean accuracy", 0.9902, 2, "seed 001", HigherIsBetter: true),
        new("defense_fgsm.fgsm_accuracy", "FGSM-trained model: accuracy under FGSM", 0.972, 1, "seed 001", HigherIsBetter: true),
        new("defense_fgsm.fgsm_accuracy", "FGSM-trained model: accuracy under FGSM", 0.9502, 2, "seed 000", HigherIsBetter: true),
    ];

    private const string VerdictsIntro = "Each model's accuracy under the per-input worst case of the assessment's attacks, beside the gradient-masking checks "
        + "run on its first test images: an eps sweep to 1, longer and restarted attacks, the black-box Square attack and a transfer attack. "
        + "A failed check means gradients understate the attacker and the robust figure is an upper bound.";

    /// <summary>What the report says of a figure this run did not measure.</summary>
    private static string NotMeasured(AssessmentResults results) => results.Partial
        ? "not measured: its stage was not run (assess --stages)"
        : $"not measured in the {results.Profile} profile";

    /// <summary>For a run of some stages, which ones the report holds.</summary>
    private static string? PartialNote(AssessmentResults results) => results.Partial
        ? $"This report holds the stages {string.Join(", ", results.Stages.Select(s => s.Stage))} only: the others were neither selected (assess --stages) nor in the cache."
        : null;

    /// <summary>This invocation's time, and the stages' own, which is what a run without the cache costs.</summary>
    private static string Timing(AssessmentResults results) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{results.Seconds:F0} s in this invocation, {StageSeconds(results):F0} s of stage work (a cached stage counts the time it took when it ran; a stage resumed after an interruption, its last invocation only)");

    private static double StageSeconds(AssessmentResults results) => results.Stages.Sum(s => s.Seconds);

    public static void Write(AssessmentResults results, string directory)
    {
        ArgumentNullException.ThrowIfNull(results);
        JsonFormat.Save(Path.Combine(directory, "results.json"), Document(results));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), Markdown(results));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.html"), Html(results, directory));
    }

    private static object Document(AssessmentResults results) => new
    {
        results.Profile,
        results.StartedUtc,
        results.Seconds,
        secondsFormatted = results.Seconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture),
        stageSeconds = StageSeconds(results),
        stageSecondsFormatted = StageSeconds(results).ToString("F0", System.Globalization.CultureInfo.InvariantCulture),
        results.CodeVersion,
        results.Machine,
        results.DatasetDigests,
        metrics = results.Metrics.ToDictionary(kv => kv.Key, kv => new { kv.Value.Value, kv.Value.Unit, kv.Value.Label, formatted = kv.Value.Format() }),
        selectedStages = results.SelectedStages,
        seeds = SeedFigures.Select(s => new { s.Metric, s.What, s.Value, s.Decimals, formatted = s.Formatted, s.Source }),
        stages = results.Stages.Select(s => new { s.Stage, s.Fingerprint, s.Seconds, secondsFormatted = s.Seconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture), s.FinishedUtc, s.Files, s.Details }),
        threats = ThreatModel.Threats.Select(t => new { t.Id, t.Category, t.Title, t.Owasp, t.Atlas, t.Control, t.Tests, evidence = Evidence(t, results), t.ResidualRisk }),
    };

    /// <summary>The metrics a threat cites (wildcards match every defended model), as label and formatted value.</summary>
    public static IReadOnlyList<(string Key, Metric Metric)> Evidence(Threat threat, AssessmentResults results)
    {
        ArgumentNullException.ThrowIfNull(threat);
        ArgumentNullException.ThrowIfNull(results);
        var metrics = results.Metrics;
        return threat.Evidence
            .SelectMany(pattern => pattern.Contains('*', StringComparison.Ordinal)
                ? metrics.Keys.Where(k => Matches(pattern, k)).Order(StringComparer.Ordinal).ToList()
                : metrics.ContainsKey(pattern) ? [pattern] : new List<string>())
            .Select(k => (k, metrics[k]))
            .ToList();
    }

    private static bool Matches(string pattern, string key)
    {
        var star = pattern.IndexOf('*', StringComparison.Ordinal);
        return key.StartsWith(pattern[..star], StringComparison.Ordinal) && key.EndsWith(pattern[(star + 1)..], StringComparison.Ordinal)
            && key.Length >= pattern.Length - 1;
    }

    private static IEnumerable<(SeedFigure Seed, Metric? Ours, string Verdict)> Summary(AssessmentResults results)
    {
        var metrics = results.Metrics;
        foreach (var seed in SeedFigures)
        {
            if (!metrics.TryGetValue(seed.Metric, out var ours))
            {
                yield return (seed, null, NotMeasured(results));
                continue;
            }
            yield return (seed, ours, seed.BeatenBy(ours.Value) ? "reproduced or beaten"
                : seed.ReproducedAtItsPrecisionBy(ours.Value) ? $"reproduced at the seed's precision ({seed.Formatted}), not beaten"
                : "missed");
        }
    }

    public static string Markdown(AssessmentResults results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var md = new StringBuilder();
        md.AppendLine("# SecureMnist security assessment").AppendLine();
        md.AppendLine($"Profile `{results.Profile}`, started {results.StartedUtc:u}, {Timing(results)}; code {results.CodeVersion}; {results.Machine.Cpu}, {results.Machine.LogicalCores} cores, {results.Machine.TorchThreads} torch threads.").AppendLine();
        md.AppendLine("Every number below comes from this run's `results.json`; the seeds' figures are quoted from the seed reports for comparison, at the precision the seeds give them.").AppendLine();
        if (PartialNote(results) is { } partial) md.AppendLine(partial).AppendLine();
        md.AppendLine("## Summary beside the seeds").AppendLine();
        md.AppendLine("| figure | seeds | this run | |").AppendLine("|---|---|---|---|");
        foreach (var (seed, ours, verdict) in Summary(results))
            md.AppendLine($"| {seed.What} | {seed.Formatted} ({seed.Source}) | {ours?.Format() ?? "-"} | {verdict} |");
        md.AppendLine();
        var verdicts = RobustnessVerdict.From(results);
        if (verdicts.Count > 0)
        {
            md.AppendLine("## Robustness verdicts").AppendLine();
            md.AppendLine(VerdictsIntro).AppendLine();
            md.AppendLine($"| {string.Join(" | ", RobustnessVerdict.Columns.Select(c => c.Header))} |").AppendLine($"|{string.Concat(RobustnessVerdict.Columns.Select(_ => "---|"))}");
            foreach (var verdict in verdicts) md.AppendLine($"| {string.Join(" | ", RobustnessVerdict.Columns.Select(c => c.Cell(verdict)))} |");
            md.AppendLine();
        }
        md.AppendLine("## Threats, controls and evidence (STRIDE)").AppendLine();
        foreach (var threat in ThreatModel.Threats)
        {
            md.AppendLine($"### {threat.Id} {threat.Category}: {threat.Title}").AppendLine();
            md.AppendLine($"- OWASP ML Top 10: {string.Join("; ", threat.Owasp)}");
            md.AppendLine($"- MITRE ATLAS: {string.Join("; ", threat.Atlas)}");
            md.AppendLine($"- Control: {threat.Control}");
            md.AppendLine($"- Guarded by: {string.Join(", ", threat.Tests.Select(t => $"`{t}`"))}");
            var evidence = Evidence(threat, results);
            md.AppendLine(evidence.Count == 0 ? $"- Evidence: {NotMeasured(results)}" : "- Evidence (this run):");
            foreach (var (_, metric) in evidence) md.AppendLine($"  - {metric.Label}: **{metric.Format()}**");
            md.AppendLine($"- Residual risk: {threat.ResidualRisk}").AppendLine();
        }
        md.AppendLine("## All measurements").AppendLine();
        md.AppendLine("| stage | metric | value |").AppendLine("|---|---|---|");
        foreach (var stage in results.Stages)
            foreach (var (_, metric) in stage.Metrics) md.AppendLine($"| {stage.Stage} | {metric.Label} | {metric.Format()} |");
        md.AppendLine();
        md.AppendLine("## Stages").AppendLine();
        md.AppendLine("| stage | seconds | fingerprint |").AppendLine("|---|---|---|");
        foreach (var stage in results.Stages) md.AppendLine($"| {stage.Stage} | {stage.Seconds:F0} | `{stage.Fingerprint}` |");
        md.AppendLine();
        md.AppendLine("## Pictures").AppendLine();
        foreach (var stage in results.Stages)
            foreach (var (name, file) in stage.Files.Where(f => f.Value.EndsWith(".png", StringComparison.Ordinal)))
                md.AppendLine($"![{name}]({file.Replace('\\', '/')})");
        return md.ToString();
    }

    public static string Html(AssessmentResults results, string directory)
    {
        ArgumentNullException.ThrowIfNull(results);
        static string E(string text) => WebUtility.HtmlEncode(text);
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SecureMnist security assessment</title>");
        html.AppendLine("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">");
        html.AppendLine("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}.missed{color:#b00}.ok{color:#070}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{background:#f6f6f6;padding:0 3px}.threat{border-left:4px solid #36c;padding-left:1em;margin:1.5em 0}</style></head><body>");
        html.AppendLine("<h1>SecureMnist security assessment</h1>");
        html.AppendLine($"<p>Profile <code>{E(results.Profile)}</code>, started {E(results.StartedUtc.ToString("u", System.Globalization.CultureInfo.InvariantCulture))}, {E(Timing(results))}; code {E(results.CodeVersion)}; {E(results.Machine.Cpu)}.</p>");
        html.AppendLine("<p>Every number below comes from this run's <code>results.json</code>; the seeds' figures are quoted from the seed reports for comparison, at the precision the seeds give them.</p>");
        if (PartialNote(results) is { } partial) html.AppendLine($"<p class=\"missed\">{E(partial)}</p>");
        html.AppendLine("<h2>Summary beside the seeds</h2><table id=\"summary\"><tr><th>figure</th><th>seeds</th><th>this run</th><th></th></tr>");
        foreach (var (seed, ours, verdict) in Summary(results))
            html.AppendLine($"<tr><td>{E(seed.What)}</td><td>{E(seed.Formatted)} ({E(seed.Source)})</td><td>{E(ours?.Format() ?? "-")}</td><td class=\"{(verdict == "missed" ? "missed" : "ok")}\">{E(verdict)}</td></tr>");
        html.AppendLine("</table>");
        var verdicts = RobustnessVerdict.From(results);
        if (verdicts.Count > 0)
        {
            html.AppendLine($"<h2>Robustness verdicts</h2><p>{E(VerdictsIntro)}</p><table id=\"verdicts\"><tr>{string.Concat(RobustnessVerdict.Columns.Select(c => $"<th>{E(c.Header)}</th>"))}</tr>");
            foreach (var verdict in verdicts)
                html.AppendLine($"<tr>{string.Concat(RobustnessVerdict.Columns.Select(c => c.Header == "gradient-masking checks" && verdict.ChecksFailed is not null
                    ? $"<td class=\"{(verdict.Trusted ? "ok" : "missed")}\">{E(c.Cell(verdict))}</td>" : $"<td>{E(c.Cell(verdict))}</td>"))}</tr>");
            html.AppendLine("</table>");
        }
        html.AppendLine("<h2>Threats, controls and evidence (STRIDE)</h2>");
        foreach (var threat in ThreatModel.Threats)
        {
            html.AppendLine($"<div class=\"threat\" id=\"{E(threat.Id)}\"><h3>{E(threat.Id)} {E(threat.Category)}: {E(threat.Title)}</h3><p>{E(threat.Scenario)}</p><table>");
            html.AppendLine($"<tr><th>OWASP ML Top 10</th><td>{E(string.Join("; ", threat.Owasp))}</td></tr><tr><th>MITRE ATLAS</th><td>{E(string.Join("; ", threat.Atlas))}</td></tr>");
            html.AppendLine($"<tr><th>control</th><td>{E(threat.Control)}</td></tr><tr><th>guarded by</th><td>{string.Join("<br>", threat.Tests.Select(t => $"<code>{E(t)}</code>"))}</td></tr>");
            var evidence = Evidence(threat, results);
            var evidenceHtml = evidence.Count == 0 ? E(NotMeasured(results)) : string.Join("<br>", evidence.Select(m => $"{E(m.Metric.Label)}: <b>{E(m.Metric.Format())}</b>"));
            html.AppendLine($"<tr><th>evidence (this run)</th><td>{evidenceHtml}</td></tr><tr><th>residual risk</th><td>{E(threat.ResidualRisk)}</td></tr></table></div>");
        }
        html.AppendLine("<h2>Pictures</h2>");
        foreach (var stage in results.Stages)
            foreach (var (name, file) in stage.Files.Where(f => f.Value.EndsWith(".png", StringComparison.Ordinal)))
            {
                var path = Path.Combine(directory, file);
                if (!File.Exists(path)) continue;
                html.AppendLine($"<figure><img alt=\"{E(name)}\" src=\"data:image/png;base64,{Convert.ToBase64String(File.ReadAllBytes(path))}\"><figcaption>{E(stage.Stage)}: {E(name.Replace('_', ' '))}</figcaption></figure>");
            }
        html.AppendLine("<h2>All measurements</h2><table><tr><th>stage</th><th>metric</th><th>value</th></tr>");
        foreach (var stage in results.Stages)
            foreach (var (_, metric) in stage.Metrics) html.AppendLine($"<tr><td>{E(stage.Stage)}</td><td>{E(metric.Label)}</td><td>{E(metric.Format())}</td></tr>");
        html.AppendLine("</table></body></html>");
        return html.ToString();
    }

    /// <summary>docs/THREAT_MODEL.md: the threat model without any run's numbers (those are in each report).</summary>
    public static string ThreatModelMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine("# Threat model (STRIDE)").AppendLine();
        md.AppendLine("The threats to this implementation: the ML pipeline (data, training, model files), the inference service and the tool's own supply chain.");
        md.AppendLine("Each maps to the OWASP Machine Learning Security Top 10 and MITRE ATLAS, names the control that answers it and the tests that fail if the control is removed,");
        md.AppendLine("and lists the metrics `./securemnist assess` measures as evidence (see `report.md` / `report.html` of a run for the numbers).");
        md.AppendLine("This file is generated from `src/SecureMnist/Assessment/ThreatModel.cs` (`./securemnist assess --threat-model docs/THREAT_MODEL.md`); a test keeps the two equal.").AppendLine();
        md.AppendLine("| id | STRIDE | threat | OWASP ML | ATLAS |").AppendLine("|---|---|---|---|---|");
        foreach (var t in ThreatModel.Threats)
            md.AppendLine($"| {t.Id} | {t.Category} | {t.Title} | {string.Join(", ", t.Owasp.Select(o => o.Split(' ')[0]))} | {string.Join(", ", t.Atlas.Select(a => a.Split(' ')[0]))} |");
        md.AppendLine();
        foreach (var t in ThreatModel.Threats)
        {
            md.AppendLine($"## {t.Id} {t.Category}: {t.Title}").AppendLine();
            md.AppendLine(t.Scenario).AppendLine();
            md.AppendLine($"- OWASP ML Top 10: {string.Join("; ", t.Owasp)}");
            md.AppendLine($"- MITRE ATLAS: {string.Join("; ", t.Atlas)}");
            md.AppendLine($"- Control: {t.Control}");
            md.AppendLine($"- Tests: {string.Join(", ", t.Tests.Select(x => $"`{x}`"))}");
            md.AppendLine($"- Evidence measured by assess: {string.Join(", ", t.Evidence.Select(x => $"`{x}`"))}");
            md.AppendLine($"- Residual risk: {t.ResidualRisk}").AppendLine();
        }
        return md.ToString();
    }
}
