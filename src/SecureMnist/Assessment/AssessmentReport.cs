using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.IO;
using SecureMnist.Reporting;

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
public static partial class AssessmentReport
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
        var scorecard = ScorecardOf(results);
        var markdown = Markdown(results, scorecard);
        JsonFormat.Save(Path.Combine(directory, "results.json"), Document(results, scorecard));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), markdown);
        AtomicFile.WriteAllText(Path.Combine(directory, "report.html"), ReportHtml.Render(markdown, directory, Title));
    }

    private const string Title = "SecureMnist security assessment";

    private static object Document(AssessmentResults results, IReadOnlyList<ThreatScore> scorecard) => new
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
        scorecard = Scorecard.Document(scorecard),
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

    /// <summary>The figures the scorecard leads with, when the run measured them (the best defended model's are added by name).</summary>
    private static readonly string[] Headlines =
    [
        "baseline.clean_accuracy", "baseline.worst_case_accuracy", "privacy.dp_epsilon", "privacy.dp_membership_tpr_at_0_1_fpr",
        "privacy.baseline_membership_tpr_at_0_1_fpr", "sanitize.attack_success_rate", "poison.attack_success_rate", "theft.copy_fidelity", "dependencies.vulnerable",
    ];

    /// <summary>The pictures the scorecard shows (by file name): the robustness curves, membership, extraction and the backdoor after sanitizing.</summary>
    private static bool KeyChart(string name) => name.EndsWith("_curve", StringComparison.Ordinal) ||
        name is "membership_baseline" or "membership_dp" or "extraction_plot" or "asr-sanitized";

    /// <summary>The scorecard of a run, under the thresholds of its profile.</summary>
    public static IReadOnlyList<ThreatScore> ScorecardOf(AssessmentResults results)
    {
        ArgumentNullException.ThrowIfNull(results);
        return Scorecard.Score(AssessmentProfile.Named(results.Profile).Thresholds, results.Metrics);
    }

    /// <summary>
    /// The report, in Markdown: the one source of both report.md and report.html. It opens with the scorecard (each threat's status by
    /// the profile's thresholds, the headline figures with their intervals and the key charts); the detail follows.
    /// </summary>
    public static string Markdown(AssessmentResults results) => Markdown(results, ScorecardOf(results));

    private static string Markdown(AssessmentResults results, IReadOnlyList<ThreatScore> scorecard)
    {
        ArgumentNullException.ThrowIfNull(results);
        var md = new StringBuilder();
        md.AppendLine($"# {Title}").AppendLine();
        md.AppendLine($"Profile `{results.Profile}`, started {results.StartedUtc:u}, {Text(Timing(results))}; code {Text(results.CodeVersion)}; {Text(results.Machine.Cpu)}, {results.Machine.LogicalCores} cores, {results.Machine.TorchThreads} torch threads.").AppendLine();
        md.AppendLine("Every number below comes from this run's `results.json`; the seeds' figures are quoted from the seed reports for comparison, at the precision the seeds give them.").AppendLine();
        if (PartialNote(results) is { } partial) md.AppendLine(Text(partial)).AppendLine();

        md.AppendLine("## Scorecard").AppendLine();
        md.AppendLine($"Each threat's status follows the thresholds the `{results.Profile}` profile states: mitigated when every one was measured and met, partly when some were, open when none was, not measured when the run has none of its figures.").AppendLine();
        md.AppendLine("| threat | status | thresholds met | what falls short |").AppendLine("|---|---|---|---|");
        foreach (var score in scorecard)
        {
            var shortfalls = score.Checks.Where(c => !c.Met).Select(c => c.Missing is { } missing ? $"{Short(missing)} not measured" : $"{Short(c.Condition.Metric)} {c.Formatted}, needs {c.Required}");
            md.AppendLine($"| [{score.Threat.Id}](#{score.Threat.Id.ToLowerInvariant()}) {Cell(score.Threat.Title)} | {score.StatusText} | " +
                $"{score.Checks.Count(c => c.Met)} of {score.Checks.Count}{(score.Model is null ? "" : $" ({Cell(score.Model)})")} | {Cell(string.Join("; ", shortfalls))} |");
        }
        md.AppendLine();
        var metrics = results.Metrics;
        var best = scorecard.FirstOrDefault(s => s.Threat.Id == "S1")?.Checks.Select(c => c.Condition.Metric).Where(metrics.ContainsKey).ToList() ?? [];
        var headlines = Headlines.Take(2).Concat(best).Concat(Headlines.Skip(2)).Where(metrics.ContainsKey).Distinct().ToList();
        if (headlines.Count > 0)
        {
            md.AppendLine("### Headline figures").AppendLine();
            md.AppendLine("| figure | this run |").AppendLine("|---|---|");
            foreach (var key in headlines) md.AppendLine($"| {Cell(metrics[key].Label)} | {Cell(metrics[key].Format())} |");
            md.AppendLine();
        }
        var charts = Pictures(results).Where(p => KeyChart(p.Name)).ToList();
        if (charts.Count > 0)
        {
            md.AppendLine("### Key charts").AppendLine();
            md.AppendLine(string.Join(Environment.NewLine, charts.Select(p => $"![{p.Stage}: {p.Name.Replace('_', ' ')}]({p.File})"))).AppendLine();
        }

        md.AppendLine("## Summary beside the seeds").AppendLine();
        md.AppendLine("| figure | seeds | this run | |").AppendLine("|---|---|---|---|");
        foreach (var (seed, ours, verdict) in Summary(results))
            md.AppendLine($"| {Cell(seed.What)} | {seed.Formatted} ({seed.Source}) | {Cell(ours?.Format() ?? "-")} | {Cell(verdict)} |");
        md.AppendLine();
        var verdicts = RobustnessVerdict.From(results);
        if (verdicts.Count > 0)
        {
            md.AppendLine("## Robustness verdicts").AppendLine();
            md.AppendLine(VerdictsIntro).AppendLine();
            md.AppendLine($"| {string.Join(" | ", RobustnessVerdict.Columns.Select(c => c.Header))} |").AppendLine($"|{string.Concat(RobustnessVerdict.Columns.Select(_ => "---|"))}");
            foreach (var verdict in verdicts) md.AppendLine($"| {string.Join(" | ", RobustnessVerdict.Columns.Select(c => Cell(c.Cell(verdict))))} |");
            md.AppendLine();
        }
        md.AppendLine("## Threats, controls and evidence (STRIDE)").AppendLine();
        foreach (var threat in ThreatModel.Threats)
        {
            md.AppendLine($"### {threat.Id} {threat.Category}: {threat.Title}").AppendLine();
            md.AppendLine(threat.Scenario).AppendLine();
            md.AppendLine($"- OWASP ML Top 10: {string.Join("; ", threat.Owasp)}");
            md.AppendLine($"- MITRE ATLAS: {string.Join("; ", threat.Atlas)}");
            md.AppendLine($"- Control: {threat.Control}");
            md.AppendLine($"- Guarded by: {string.Join(", ", threat.Tests.Select(t => $"`{t}`"))}");
            var evidence = Evidence(threat, results);
            md.AppendLine(evidence.Count == 0 ? $"- Evidence: {NotMeasured(results)}" : "- Evidence (this run):");
            foreach (var (_, metric) in evidence) md.AppendLine($"  - {Text(metric.Label)}: **{Text(metric.Format())}**");
            if (scorecard.FirstOrDefault(x => x.Threat.Id == threat.Id) is { } scored)
            {
                md.AppendLine($"- Status: **{scored.StatusText}**, by the profile's thresholds{(scored.Model is null ? "" : $" (best defended model: {Text(scored.Model)})")}:");
                foreach (var check in scored.Checks)
                    md.AppendLine($"  - {(check.Met ? "met" : check.Value is null ? "not measured" : "missed")}: `{check.Condition.Metric}` {Text(check.Formatted)}, needs {Text(check.Required)}");
            }
            md.AppendLine($"- Residual risk: {threat.ResidualRisk}").AppendLine();
        }
        md.AppendLine("## Pictures").AppendLine();
        foreach (var picture in Pictures(results)) md.AppendLine($"![{picture.Stage}: {picture.Name.Replace('_', ' ')}]({picture.File})").AppendLine();
        md.AppendLine("## All measurements").AppendLine();
        md.AppendLine("| stage | metric | value |").AppendLine("|---|---|---|");
        foreach (var stage in results.Stages)
            foreach (var (_, metric) in stage.Metrics) md.AppendLine($"| {stage.Stage} | {Cell(metric.Label)} | {Cell(metric.Format())} |");
        md.AppendLine();
        md.AppendLine("## Stages").AppendLine();
        md.AppendLine("| stage | seconds | fingerprint |").AppendLine("|---|---|---|");
        foreach (var stage in results.Stages) md.AppendLine($"| {stage.Stage} | {stage.Seconds:F0} | `{stage.Fingerprint}` |");
        return md.ToString();
    }

    /// <summary>A metric key without its stage: "service.oversized_status" is "oversized_status".</summary>
    private static string Short(string key) => key[(key.IndexOf('.', StringComparison.Ordinal) + 1)..];

    private static IEnumerable<(string Stage, string Name, string File)> Pictures(AssessmentResults results) =>
        results.Stages.SelectMany(stage => stage.Files.Where(f => f.Value.EndsWith(".png", StringComparison.Ordinal))
            .Select(f => (stage.Stage, f.Key, f.Value.Replace('\\', '/'))));

    /// <summary>Text from a run (labels, paths, a machine's name) made inert in Markdown: no links, images, raw HTML or bold come from it (an underscore within a word emphasises nothing).</summary>
    private static string Text(string text) => MarkdownEscape().Replace(text, @"\$0");

    /// <summary>Text for a table cell: inert, and its pipes kept from splitting the cell.</summary>
    private static string Cell(string text) => Text(text).ReplaceLineEndings(" ");

    [System.Text.RegularExpressions.GeneratedRegex(@"[\\|<>\[\]*]")]
    private static partial System.Text.RegularExpressions.Regex MarkdownEscape();

    /// <summary>
    /// report.html: the Markdown report rendered by Markdig, raw HTML disabled, under a CSP that loads nothing (images are inlined as
    /// data URIs; a picture whose file is missing is left out). Status words are coloured by what they mean, and "not measured" is grey.
    /// </summary>
    public static string Html(AssessmentResults results, string directory) => ReportHtml.Render(Markdown(results), directory, Title);

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
