using System.CommandLine;
using SecureMnist.Assessment;
using SecureMnist.Server;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>assess: the whole story, on real data, as a report and a JSON.</summary>
internal static class AssessCommand
{
    public static Command Create()
    {
        var profile = new Option<string>("--profile") { Description = "quick: subsets and short schedules, minutes on 2 cores; full: the seeds' settings and the stronger evaluations (hours)", DefaultValueFactory = _ => "quick" };
        profile.AcceptOnlyFromAmong("quick", "full");
        var output = new Option<string?>("--out") { Description = "Output folder (default out/assess-PROFILE): results.json, report.md, report.html, stages/" };
        var force = new Option<bool>("--force") { Description = "Redo stages even when their inputs did not change: every stage, or with --stages the ones named (the stages they build on are reused from the cache)" };
        var key = new Option<string>("--key") { Description = "Ed25519 key that signs the models (created on first use at the default path)", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var stages = new Option<string?>("--stages")
        {
            Description = $"Comma-separated stages to run (with the stages they build on); the others are taken from the cache where an earlier run finished them, and left out of the report where not. Stages: {string.Join(", ", SecurityAssessment.StageNames)}. Example: --stages poisoning,poison-defenses",
        };
        var threatModel = new Option<string?>("--threat-model") { Description = "Only write the threat model as Markdown to this file (e.g. docs/THREAT_MODEL.md) and stop" };
        var failOn = new Option<string?>("--fail-on")
        {
            Description = "Exit 1 when any of these comma-separated conditions holds (a CI gate), e.g. 'defense_pgd.worst_case_accuracy<0.5,packaging.tampered_refused<packaging.tampered_tried' (the right side a number or another metric); " +
                "percentages compare as fractions (0.9 is 90%); an unknown metric is refused before any work, and one this run did not measure fails the gate",
        };
        var sarif = InteropCommands.CommonSarif();
        var json = CommonOptions.Json();
        var command = new Command("assess", """
            The end-to-end security assessment: verify data, train the baseline, evaluate, attack (FGSM, PGD, worst case),
            train defended models, poison the training set and measure the backdoor, detect and sanitize the poison, sign and
            tamper with the package, and smoke-test the service over HTTP; then write results.json, report.md and a
            self-contained report.html with the STRIDE threat model, each threat with its control, its tests and this run's
            evidence. Stages are cached by their inputs: a rerun skips finished ones, an interrupted one resumes.
            --stages runs a part (e.g. the poisoning story of the full profile, without its hours of adversarial training).
            Example: ./securemnist assess --profile quick
            Gate:    ./securemnist assess --fail-on 'baseline.clean_accuracy<0.98,poison.attack_success_rate>0.5'   (exit 1 when one holds)
            """) { profile, output, force, stages, key, threatModel, failOn, sarif, json };
        command.SetAction(result =>
        {
            if (result.GetValue(threatModel) is { } threatPath)
            {
                SecureMnist.IO.AtomicFile.WriteAllText(threatPath, AssessmentReport.ThreatModelMarkdown());
                Ui.Out.MarkupLineInterpolated($"wrote {threatPath}: {ThreatModel.Threats.Count} threats");
                return 0;
            }
            var gate = result.GetValue(failOn) is { } expression ? MetricGate.Parse(expression) : null;
            var chosen = AssessmentProfile.Named(result.GetValue(profile)!);
            var directory = result.GetValue(output) ?? Path.Combine("out", "assess-" + chosen.Name);
            var selection = result.GetValue(stages)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (selection is not null) SecurityAssessment.WithPrerequisites(selection); // refuses an unknown stage before any work
            var options = new AssessmentOptions(chosen, directory, result.GetValue(CommonOptions.DataRoot)!, result.GetValue(key)!, result.GetValue(force), Directory.GetCurrentDirectory(),
                selection);
            AssessmentResults? results = null;
            var interactive = Ui.Err.Profile.Capabilities.Interactive;
            var lastLine = TimeSpan.MinValue;
            var lastStage = "";
            var lastStep = "";
            // The step a progress message belongs to: its text before the first colon ("sanitized: epoch 3/12, ..." is "sanitized").
            static string Step(string message) => message.Split(':')[0];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Ui.Err.Status().Start("starting", context =>
            {
                var progress = new SyncProgress<AssessmentProgress>(p =>
                {
                    var line = $"[{p.Index}/{p.Stages}] {p.Stage}: {p.Message}";
                    if (p.Finished)
                    {
                        Ui.Err.MarkupLineInterpolated($"[green]✓[/] {line}");
                    }
                    else if (interactive)
                    {
                        context.Status(Markup.Escape(line));
                    }
                    else if (p.Stage != lastStage || Step(p.Message) != lastStep || clock.Elapsed - lastLine >= TimeSpan.FromSeconds(30))
                    {
                        // Logs get a line when a stage or a step within it starts, and otherwise at most one every 30 s.
                        (lastStage, lastStep, lastLine) = (p.Stage, Step(p.Message), clock.Elapsed);
                        Ui.Info($"{clock.Elapsed:hh\\:mm\\:ss} {line}");
                    }
                });
                results = new SecurityAssessment(options, SecureMnist.Server.ServiceSmokeCheck.RunAsync, progress).Run(CommandRunner.Cancellation.Token);
            });
            AssessmentReport.Write(results!, directory);
            var failures = gate is null ? [] : MetricGate.Check(gate, results!.Metrics);
            var exitCode = failures.Count == 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
            if (result.GetValue(sarif) is { } sarifPath)
                SecureMnist.Reporting.Sarif.Save(sarifPath, SecureMnist.Reporting.SarifFindings.Assessment(failures, results!, Path.Combine(directory, "results.json"), SecureMnist.Training.CodeVersion.Current()));
            var scorecard = AssessmentReport.ScorecardOf(results!);
            if (result.GetValue(json))
            {
                Ui.WriteJson(new
                {
                    output = directory, results!.Profile, results.Seconds, metrics = results.Metrics.ToDictionary(kv => kv.Key, kv => kv.Value.Value),
                    scorecard = scorecard.ToDictionary(s => s.Threat.Id, s => s.StatusText),
                    gate = gate is null ? null : new { conditions = gate.Select(c => c.ToString()), passed = failures.Count == 0,
                        failures = failures.Select(f => new { condition = f.Condition.ToString(), value = double.IsNaN(f.Value) ? (double?)null : f.Value, f.Label }) },
                });
                return exitCode;
            }
            var table = new Table().AddColumns("figure", "this run");
            foreach (var (_, metric) in results!.Metrics) table.AddRow(Markup.Escape(metric.Label), metric.Format());
            Ui.Out.Write(table);
            var card = new Table().AddColumns("threat", "status", "thresholds met");
            foreach (var score in scorecard)
            {
                var colour = score.Status switch { ThreatStatus.Mitigated => "green", ThreatStatus.Partly => "yellow", ThreatStatus.Open => "red", _ => "grey" };
                card.AddRow(Markup.Escape($"{score.Threat.Id} {score.Threat.Title}"), $"[{colour}]{Markup.Escape(score.StatusText)}[/]", $"{score.Checks.Count(c => c.Met)} of {score.Checks.Count}");
            }
            Ui.Out.Write(card);
            Ui.Out.MarkupLineInterpolated($"wrote {Path.Combine(directory, "report.html")}, report.md and results.json ({results.Seconds:F0} s)");
            if (gate is not null)
            {
                foreach (var failure in failures)
                    Ui.Out.MarkupLineInterpolated($"[red]gate failed:[/] {failure.Condition} ({(double.IsNaN(failure.Value) ? "" : $"measured {failure.Value:0.####}: ")}{failure.Label})");
                if (failures.Count == 0) Ui.Out.MarkupLineInterpolated($"[green]gate passed:[/] none of {string.Join(", ", gate)} holds");
            }
            return exitCode;
        });
        return command;
    }
}
