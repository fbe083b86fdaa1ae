using System.CommandLine;
using System.Globalization;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class RobustnessChecksCommand
{
    public static Command Create()
    {
        var defaults = new RobustnessCheckOptions();
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var subset = new Option<int>("--subset") { Description = "Check on the first N test images", DefaultValueFactory = _ => 1000 };
        var eps = new Option<double>("--eps") { Description = "The L-inf budget whose robust accuracy is checked", DefaultValueFactory = _ => defaults.Epsilon };
        var steps = new Option<int>("--steps") { Description = "APGD steps of the white-box attacks and the eps sweep", DefaultValueFactory = _ => defaults.Steps };
        var longSteps = new Option<int>("--long-steps") { Description = "APGD steps of the long run the short one is compared with", DefaultValueFactory = _ => defaults.LongSteps };
        var restarts = new Option<int>("--restarts") { Description = "Restarts of the run compared with a single start", DefaultValueFactory = _ => defaults.Restarts };
        var squareQueries = new Option<int>("--square-queries") { Description = "Square's queries per input", DefaultValueFactory = _ => defaults.SquareQueries };
        var apgdTargets = new Option<int>("--apgd-t-targets") { Description = "Target classes of APGD-T in the white-box worst case", DefaultValueFactory = _ => defaults.ApgdTargets };
        var transferFrom = new Option<string?>("--transfer-from") { Description = "An independently trained package (signed by the same key) to craft transfer attacks on; without it the transfer check is skipped" };
        var seed = new Option<int>("--seed") { Description = "Seed of the attacks' random starts and queries", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Folder for checks.json and eps-sweep.png", DefaultValueFactory = _ => "out/robustness-checks" };
        var json = CommonOptions.Json();
        var command = new Command("robustness-checks", $"""
            Checks that a model's robust accuracy is real and not gradient masking. Each check passes or fails with its numbers:
              {RobustnessCheck.EpsilonSweep}: APGD-CE accuracy against eps up to 1.0 must fall to <= 1% and never rise;
              {RobustnessCheck.StepConvergence}: {defaults.Steps} -> --long-steps APGD steps may change accuracy by <= 0.3 points;
              {RobustnessCheck.RestartConvergence}: 1 -> --restarts restarts, the same bar;
              {RobustnessCheck.BlackBoxGap}: Square (no gradients) may be at most 0.5 points below the white-box worst case (APGD-CE + APGD-T);
              {RobustnessCheck.Transfer}: PGD examples crafted on --transfer-from may not beat the white-box attacks by more than 0.5 points;
              {RobustnessCheck.ZeroGradients}: at most 1% of inputs may have an all-zero CE or DLR gradient.
            Exit code: 0 when every check that ran passed, 1 when one failed.
            Example: ./securemnist robustness-checks --model models/trades --transfer-from models/baseline --subset 1000
            """)
        { model, publicKey, allowUnsigned, subset, eps, steps, longSteps, restarts, squareQueries, apgdTargets, transferFrom, seed, output, json };
        command.SetAction(result =>
        {
            var options = new RobustnessCheckOptions(result.GetValue(eps), Steps: result.GetValue(steps), LongSteps: result.GetValue(longSteps), Restarts: result.GetValue(restarts),
                SquareQueries: result.GetValue(squareQueries), ApgdTargets: result.GetValue(apgdTargets), Seed: result.GetValue(seed));
            options.Validate();
            var count = result.GetValue(subset);
            if (count <= 0) throw new ArgumentException($"--subset must be at least 1 (got {count})");
            using var loaded = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            using var source = result.GetValue(transferFrom) is { } sourcePath
                ? PackageLoading.Load(result, sourcePath, publicKey, allowUnsigned)
                : null;
            var test = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist").Test;
            test = test.Take(Math.Min(count, test.Count));
            using var classifier = new NetworkClassifier(loaded.Network);
            using var sourceClassifier = source is null ? null : new NetworkClassifier(source.Network);
            var report = Ui.Err.Status().Start("robustness checks", context =>
                RobustnessChecks.Run(classifier, test, options, sourceClassifier, new SyncProgress<string>(message =>
                {
                    context.Status(Markup.Escape(message));
                }), CommandRunner.Cancellation.Token));

            var directory = result.GetValue(output)!;
            var document = new { model = loaded.Directory, modelManifestSha256 = loaded.ManifestSha256, transferSource = source?.Directory, options, report, passed = report.Passed };
            AtomicFile.WriteAllText(Path.Combine(directory, "checks.json"), System.Text.Json.JsonSerializer.Serialize(document, JsonFiles.Options));
            var sweep = report.Checks.Single(c => c.Name == RobustnessCheck.EpsilonSweep).Figures
                .Select(kv => (double.Parse(kv.Key["accuracy_at_".Length..], CultureInfo.InvariantCulture), 100 * kv.Value)).ToList();
            LineChart.Save(Path.Combine(directory, "eps-sweep.png"), $"APGD-CE accuracy against eps ({report.Images} test images)", "eps (L-inf)", "accuracy (%)",
                [new Series("APGD-CE", sweep)], 0, 100);
            if (result.GetValue(json)) Ui.WriteJson(document);
            else Render(report, directory);
            return report.Passed ? 0 : 1;
        });
        return command;
    }

    private static void Render(RobustnessCheckReport report, string directory)
    {
        Ui.Out.MarkupLineInterpolated($"{report.Images} test images, eps {report.Epsilon}: clean [bold]{Ui.Percent(report.CleanAccuracy)}[/], white-box worst case [bold]{Ui.Percent(report.WhiteBoxAccuracy)}[/] ({report.WhiteBoxAttacks}), per-input worst case over every attack below at eps {report.Epsilon} [bold]{Ui.Percent(report.AllAttacksAccuracy)}[/]; {report.Seconds:F0} s");
        var table = new Table().AddColumns("check", "result", "rule", "figures");
        foreach (var check in report.Checks)
        {
            var verdict = check.Passed switch { true => "[green]pass[/]", false => "[red]FAIL[/]", null => "[yellow]skipped[/]" };
            var figures = string.Join(", ", check.Figures.Select(kv => $"{kv.Key} {(kv.Key.Contains("points", StringComparison.Ordinal) || kv.Key.StartsWith("broken", StringComparison.Ordinal) ? kv.Value.ToString("0.##", CultureInfo.InvariantCulture) : Ui.Percent(kv.Value))}"));
            table.AddRow(check.Name, verdict, Markup.Escape(check.Rule), Markup.Escape(check.Note ?? figures));
        }
        Ui.Out.Write(table);
        Ui.Out.MarkupLineInterpolated($"{(report.Passed ? "every check that ran passed" : "a check FAILED: the robust accuracy above may be an artefact of gradient masking")}; written to [bold]{directory}[/]: checks.json, eps-sweep.png");
    }
}
