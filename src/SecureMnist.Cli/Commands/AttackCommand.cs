using System.CommandLine;
using System.Globalization;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.IO;
using SecureMnist.Reporting;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class AttackCommand
{
    public static Command Create()
    {
        var defaults = new AttackSettings();
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = CommonOptions.Dataset();
        var attacks = new Option<string>("--attacks")
        {
            Description = "Comma-separated attacks, run in order; each input counts as robust only if all fail. Known: " +
                string.Join("; ", AttackCatalog.Descriptions.Select(d => $"{d.Key} = {d.Value}")),
            DefaultValueFactory = _ => "fgsm,pgd",
        };
        var eps = new Option<double>("--eps") { Description = "L-inf budget (pixels in [0, 1])", DefaultValueFactory = _ => defaults.Epsilon };
        var alpha = new Option<double>("--alpha") { Description = "PGD step size", DefaultValueFactory = _ => defaults.StepSize };
        var steps = new Option<int>("--steps") { Description = "PGD steps", DefaultValueFactory = _ => defaults.Steps };
        var restarts = new Option<int>("--restarts") { Description = "Random restarts (PGD, APGD); each input keeps its strongest example", DefaultValueFactory = _ => defaults.Restarts };
        var epsL2 = new Option<double>("--eps-l2") { Description = "L2 budget for pgd-l2", DefaultValueFactory = _ => defaults.EpsilonL2 };
        var alphaL2 = new Option<double>("--alpha-l2") { Description = "Step size for pgd-l2", DefaultValueFactory = _ => defaults.StepSizeL2 };
        var apgdSteps = new Option<int>("--apgd-steps") { Description = "APGD iterations (apgd-ce, apgd-dlr, apgd-t)", DefaultValueFactory = _ => defaults.ApgdSteps };
        var budgets = new AttackBudgetOptions();
        var cwSteps = new Option<int>("--cw-steps") { Description = "C&W Adam iterations per binary-search step", DefaultValueFactory = _ => defaults.CarliniWagner.MaxIterations };
        var cwSearch = new Option<int>("--cw-search") { Description = "C&W binary-search steps over c", DefaultValueFactory = _ => defaults.CarliniWagner.BinarySearchSteps };
        var cwKappa = new Option<double>("--cw-kappa") { Description = "C&W confidence margin kappa", DefaultValueFactory = _ => defaults.CarliniWagner.Confidence };
        var cwConst = new Option<double>("--cw-c") { Description = "C&W initial constant c", DefaultValueFactory = _ => defaults.CarliniWagner.InitialConst };
        var cwLr = new Option<double>("--cw-lr") { Description = "C&W Adam learning rate", DefaultValueFactory = _ => defaults.CarliniWagner.LearningRate };
        var seed = new Option<int>("--seed") { Description = "Seed for random starts", DefaultValueFactory = _ => 0 };
        var subset = new Option<int?>("--subset") { Description = "Attack the first N test images only (default: all)" };
        var range = new Option<string?>("--range")
        {
            Description = "Attack test images START:END only (0-based, END excluded; 5000: runs to the end), so that several processes share " +
                "one long evaluation; join their runs with 'attack combine'",
        };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per attack batch", DefaultValueFactory = _ => 500 };
        var curve = new Option<string?>("--curve") { Description = "Also measure accuracy against eps at these values, e.g. 0,0.05,0.1,0.2,0.3,0.4 (PNG and JSON)" };
        var curveAttacks = new Option<string>("--curve-attacks") { Description = "Attacks for the curve", DefaultValueFactory = _ => "fgsm,pgd" };
        var output = new Option<string>("--out") { Description = "Folder for report.json, grid.png, the adversarial set and the curve", DefaultValueFactory = _ => "out/attack" };
        var json = CommonOptions.Json();
        var target = new Option<string?>("--target") { Description = "Attack a running SecureMnist service at this URL instead of a package (black-box attacks only: square, hopskipjump), e.g. http://127.0.0.1:8080" };
        var apiKey = new Option<string?>("--api-key") { Description = "With --target: the API key to query with (scores access; the SECUREMNIST_API_KEY environment variable if not given)" };
        var budget = new Option<long?>("--budget") { Description = "With --target: total queries (images sent) the attack may spend; each input gets an equal share" };
        var quota = new Option<int?>("--quota") { Description = "With --target: the key's images per minute, so the attack paces itself instead of meeting 429s" };

        var command = new Command("attack", """
            Attack a verified model and report robust accuracy under the per-input worst case of the listed attacks,
            attack success rate, perturbation norms, per-class figures and speed. Saves the adversarial examples
            (IDX: float32 images, labels, predictions; see adversarial.json) and a picture grid.
            Robustness is measured in one threat model at a time: a list that mixes L-inf and L2 attacks is refused.
            Example: ./securemnist attack --model models/baseline --attacks autoattack --eps 0.3
            A running service is attacked over HTTP with --target URL --api-key K --budget N: Square (scores) and HopSkipJump
            (decisions) within N queries in all, shared equally by the inputs, with the queries really sent in the report.
            HopSkipJump alone asks for labels only, so it also attacks label-only keys; an answer the service abstained on is a
            refusal, never the attack's success.
            Example: ./securemnist attack --model models/baseline --attacks fgsm,pgd,apgd-ce,apgd-dlr --eps 0.3 --subset 1000
            Example: ./securemnist attack --target http://127.0.0.1:8080 --api-key $KEY --attacks square --budget 20000 --subset 100
            Split a long run over processes with --range, then join the runs per input:
              ./securemnist attack --model M --attacks autoattack --range 0:5000 --threads 1 --out out/aa-a &
              ./securemnist attack --model M --attacks autoattack --range 5000: --threads 1 --out out/aa-b
              ./securemnist attack combine out/aa-a out/aa-b
            """)
        {
            model, publicKey, allowUnsigned, dataset, attacks, eps, alpha, steps, restarts, epsL2, alphaL2, apgdSteps,
            cwSteps, cwSearch, cwKappa, cwConst, cwLr, seed, subset, range, batchSize, curve, curveAttacks, output, json, target, apiKey, budget, quota,
        };
        foreach (var option in budgets.All) command.Options.Add(option);
        command.Subcommands.Add(CreateCombine());
        command.SetAction(result =>
        {
            var chosen = result.GetValue(range) is { } rangeText ? IndexRange.Parse(rangeText) : (IndexRange?)null;
            if (chosen is not null && result.GetValue(subset) is not null) throw new ArgumentException("--range and --subset both choose the test images; give one of them");
            if (result.GetValue(subset) is < 1) throw new ArgumentException($"--subset must be at least 1 (got {result.GetValue(subset)})");
            var settings = budgets.Apply(new AttackSettings
            {
                Epsilon = result.GetValue(eps), StepSize = result.GetValue(alpha), Steps = result.GetValue(steps), Restarts = result.GetValue(restarts),
                EpsilonL2 = result.GetValue(epsL2), StepSizeL2 = result.GetValue(alphaL2), ApgdSteps = result.GetValue(apgdSteps), Seed = result.GetValue(seed),
                CarliniWagner = new CarliniWagnerOptions(result.GetValue(cwKappa), result.GetValue(cwLr), result.GetValue(cwSearch), result.GetValue(cwSteps), result.GetValue(cwConst)),
            }, result);
            if (result.GetValue(target) is { } url)
            {
                if (chosen is not null) throw new ArgumentException("--range works on a package (--model); against a service (--target) use --subset");
                return RemoteAttack.Run(url, result.GetValue(apiKey), result.GetValue(budget), result.GetValue(quota), result.GetValue(attacks)!, settings,
                    new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!), result.GetValue(subset) ?? 100,
                    result.GetValue(output)!, result.GetValue(json));
            }
            var attackList = AttackCatalog.Parse(result.GetValue(attacks)!, settings);
            var epsilons = ParseEpsilons(result.GetValue(curve));
            var curveList = result.GetValue(curveAttacks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var name in curveList) AttackCatalog.Create(name, settings);

            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var (start, end) = chosen?.Within(data.Test.Count) ?? (0, Math.Min(result.GetValue(subset) ?? data.Test.Count, data.Test.Count));
            var test = start == 0 && end == data.Test.Count ? data.Test : data.Test.Select(Enumerable.Range(start, end - start).ToArray());
            var inputs = AttackedInputs.Of(data.Name, data.Test, start, end);
            var outputDirectory = result.GetValue(output)!;
            using var classifier = new NetworkClassifier(verified.Network);

            var run = Ui.WithAttackProgress(attackList.Select(a => a.Name).ToList(), progress =>
                AttackEvaluator.Run(classifier, test, attackList, result.GetValue(batchSize), progress, CommandRunner.Cancellation.Token));

            var info = new AdversarialSetInfo(verified.Directory, verified.ManifestSha256, data.Name, test.Count, attackList.Select(a => a.Name).ToList(),
                run.Report.CleanAccuracy, run.Report.RobustAccuracy, DateTimeOffset.UtcNow);
            AdversarialSet.Save(Path.Combine(outputDirectory, "adversarial"), run, info);
            var gridPath = Path.Combine(outputDirectory, "grid.png");
            var shown = AdversarialGrid.Save(gridPath, test, run);

            IReadOnlyList<CurvePoint>? points = null;
            if (epsilons is not null)
            {
                points = Ui.Err.Status().Start("robustness curve", context =>
                    RobustnessCurve.Measure(classifier, test, epsilons, curveList, settings, new SyncProgress<string>(message => context.Status(message)), CommandRunner.Cancellation.Token));
                var series = points.GroupBy(p => p.Attack).Select(g => new Series(g.Key, g.Select(p => (p.Epsilon, 100 * p.Accuracy)).ToList())).ToList();
                LineChart.Save(Path.Combine(outputDirectory, "curve.png"), $"accuracy against eps: {verified.Manifest.Architecture}, {test.Count} test images",
                    "eps (L-inf)", "accuracy (%)", series, 0, 100);
                AtomicFile.WriteAllText(Path.Combine(outputDirectory, "curve.json"), System.Text.Json.JsonSerializer.Serialize(points, JsonFiles.Options));
            }
            var document = new
            {
                model = verified.Directory, modelManifestSha256 = verified.ManifestSha256, dataset = data.Name, images = test.Count, inputs,
                threatModel = ThreatModel.Of(attackList), settings, attacks = info.Attacks, report = run.Report, curve = points,
            };
            AtomicFile.WriteAllText(Path.Combine(outputDirectory, "report.json"), System.Text.Json.JsonSerializer.Serialize(document, JsonFiles.Options));
            if (result.GetValue(json))
            {
                Ui.WriteJson(document);
                return 0;
            }
            Render(run.Report, test.Count, start == 0 && end == data.Test.Count ? "" : $" (test images {start}:{end})");
            Ui.Out.MarkupLineInterpolated($"written to [bold]{outputDirectory}[/]: report.json, adversarial/ (IDX), grid.png ({shown} examples){(points is null ? "" : ", curve.png, curve.json")}");
            return 0;
        });
        return command;
    }

    private static double[]? ParseEpsilons(string? text)
    {
        if (text is null) return null;
        var values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v =>
            double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 && value <= 1
                ? value : throw new ArgumentException($"--curve: '{v}' is not an eps in [0, 1]")).ToArray();
        return values.Length > 0 ? values : throw new ArgumentException("--curve needs at least one eps");
    }

    private static void Render(RobustnessReport report, int images, string which)
    {
        Ui.Out.MarkupLineInterpolated($"clean accuracy [bold]{Ui.Percent(report.CleanAccuracy)}[/], robust accuracy (worst case) [bold]{Ui.Percent(report.RobustAccuracy)}[/] {Interval(report.RobustInterval95)}, attack success rate {Ui.Percent(report.AttackSuccessRate)} of correctly classified inputs; {images} images{which} in {report.Seconds:F1} s ({report.ImagesPerSecond:F1} images/s)");
        var stages = new Table().Title("attacks, in order (each runs on the inputs still robust)").AddColumns("attack", "settings", "attempted", "broken", "robust after", "seconds", "images/s", "image-steps/s");
        foreach (var s in report.Stages)
        {
            var open = s.Attack.IndexOf('(', StringComparison.Ordinal);
            var (name, settings) = open < 0 ? (s.Attack, "") : (s.Attack[..open], s.Attack[(open + 1)..].TrimEnd(')').Replace(",", " ", StringComparison.Ordinal));
            stages.AddRow(Markup.Escape(name), Markup.Escape(settings), $"{s.Attempted}", $"{s.Broken}", Ui.Percent(s.RobustAccuracyAfter), $"{s.Seconds:F1}", $"{s.ImagesPerSecond:F1}", $"{s.ImageStepsPerSecond:F0}");
        }
        Ui.Out.Write(stages);
        var p = report.Perturbation;
        Ui.Out.MarkupLineInterpolated($"perturbations of the {p.Count} broken inputs: L-inf mean {p.MeanLInf:F4}, median {p.MedianLInf:F4}; L2 mean {p.MeanL2:F4}, median {p.MedianL2:F4}");
        var classes = new Table().AddColumns("class", "support", "clean", "robust");
        foreach (var c in report.Classes)
        {
            // A class with no inputs in the attacked set has no accuracy to show.
            if (c.Support == 0) classes.AddRow($"{c.Label}", "0", "[grey]-[/]", "[grey]-[/]");
            else classes.AddRow($"{c.Label}", $"{c.Support}", Ui.Percent(c.CleanAccuracy), Ui.Percent(c.RobustAccuracy));
        }
        Ui.Out.Write(classes);
    }

    private static string Interval(SecureMnist.Evaluation.Interval? interval) =>
        interval is { } i ? $"(95% CI {Ui.Percent(i.Low)}-{Ui.Percent(i.High)}, Wilson, over these images)" : "";

    private static Command CreateCombine()
    {
        var runs = new Argument<string[]>("runs") { Description = "Attack run folders (each with report.json and adversarial/, as attack --out writes them)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out") { Description = "Also write the combined result to this JSON file" };
        var json = CommonOptions.Json();
        var command = new Command("combine", """
            Join attack runs on one model, test set and threat model into one per-input worst case: an input counts as robust only if
            every run that attacked it left it correctly classified. Runs may split the test set by --range, or add attacks to images an
            earlier run attacked (for example Square on the first 1,000 after the gradient attacks on all 10,000). The result says which
            attacks stand behind which images, and which test images no run attacked. Runs on different models, test sets or threat
            models are refused.
            Example: ./securemnist attack combine out/aa-a out/aa-b --out out/aa.json
            """)
        { runs, output, json };
        command.SetAction(result =>
        {
            var combined = AttackRunCombination.Combine(result.GetValue(runs)!.Select(SavedAttackRun.Load).ToList());
            if (result.GetValue(output) is { } path)
                AtomicFile.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(combined, JsonFiles.Options));
            if (result.GetValue(json))
            {
                Ui.WriteJson(combined);
                return 0;
            }
            Ui.Out.MarkupLineInterpolated($"robust accuracy (per-input worst case over {combined.Runs.Count} runs) [bold]{Ui.Percent(combined.RobustAccuracy)}[/] {Interval(combined.RobustInterval95)}: {combined.Robust} of {combined.Images} test images of {combined.Dataset}, {combined.ThreatModel.Norm} eps {combined.ThreatModel.Epsilon}");
            var table = new Table().Title("which attacks stand behind which images").AddColumns("attacks", "test images", "images", "robust", "95% CI");
            foreach (var g in combined.Coverage)
                table.AddRow(Markup.Escape(string.Join(", ", g.Attacks)), Markup.Escape(Summarise(g.Ranges)), $"{g.Images}", Ui.Percent(g.RobustAccuracy),
                    $"{Ui.Percent(g.RobustInterval95.Low)}-{Ui.Percent(g.RobustInterval95.High)}");
            Ui.Out.Write(table);
            if (combined.Caveat is { } caveat)
                Ui.Out.MarkupLineInterpolated($"[yellow]{caveat}[/]{(combined.Uncovered.Count > 0 ? $" (not attacked: {Summarise(combined.Uncovered)})" : "")}");
            return 0;
        });
        return command;
    }

    private static string Summarise(IReadOnlyList<string> ranges) =>
        ranges.Count <= 4 ? string.Join(", ", ranges) : $"{string.Join(", ", ranges.Take(3))} and {ranges.Count - 3} more ranges";
}
