using System.CommandLine;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.IO;
using SecureMnist.Security;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class CompareCommand
{
    public static Command Create()
    {
        var defaults = new AttackSettings();
        var models = new Option<string>("--models") { Description = "Comma-separated model packages", Required = true };
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var attacks = new Option<string>("--attacks") { Description = "Attacks for robust accuracy (per-input worst case)", DefaultValueFactory = _ => "pgd" };
        var eps = new Option<double>("--eps") { Description = "L-inf budget", DefaultValueFactory = _ => defaults.Epsilon };
        var steps = new Option<int>("--steps") { Description = "PGD steps", DefaultValueFactory = _ => defaults.Steps };
        var alpha = new Option<double>("--alpha") { Description = "PGD step size", DefaultValueFactory = _ => defaults.StepSize };
        var restarts = new Option<int>("--restarts") { Description = "Random restarts", DefaultValueFactory = _ => defaults.Restarts };
        var subset = new Option<int?>("--subset") { Description = "Use the first N test images" };
        var output = new Option<string>("--out") { Description = "Folder for comparison.json, tradeoff.png, robust-by-epoch.png", DefaultValueFactory = _ => "out/compare" };
        var json = CommonOptions.Json();
        var budgets = new AttackBudgetOptions();
        var command = new Command("compare", """
            Clean and robust accuracy of several models under the same attacks: a table, the accuracy-robustness
            trade-off as a PNG, and each run's PGD accuracy on held-out images per epoch (from its run record).
            Example: ./securemnist compare --models models/baseline,models/fgsm,models/pgd --attacks pgd,apgd-dlr
            """)
        { models, publicKey, allowUnsigned, attacks, eps, steps, alpha, restarts, subset, output, json };
        foreach (var option in budgets.All) command.Options.Add(option);
        command.SetAction(result =>
        {
            var settings = budgets.Apply(new AttackSettings { Epsilon = result.GetValue(eps), Steps = result.GetValue(steps), StepSize = result.GetValue(alpha), Restarts = result.GetValue(restarts) }, result);
            var attackList = AttackCatalog.Parse(result.GetValue(attacks)!, settings);
            var paths = result.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist");
            var test = result.GetValue(subset) is { } n ? data.Test.Take(n) : data.Test;
            var measured = new List<ComparedModel>();
            foreach (var path in paths)
            {
                using var verified = PackageLoading.Load(result, path, publicKey, allowUnsigned);
                measured.Add(Ui.Err.Status().Start($"attacking {path}", _ => ModelComparison.Measure(verified, test, attackList, CommandRunner.Cancellation.Token)));
            }
            var directory = result.GetValue(output)!;
            var description = string.Join(" + ", attackList.Select(a => a.Name));
            var pictures = ModelComparison.Plot(measured, $"{string.Join(", ", attackList.Select(a => a.Name.Split('(')[0]))}, eps {settings.Epsilon}", directory);
            var seedGroups = ModelComparison.SeedGroups(measured);
            var document = new
            {
                images = test.Count, attacks = description,
                models = measured.Select(m => new
                {
                    m.Model, m.Architecture, m.Defense, m.CleanAccuracy, cleanInterval95 = BinomialInterval.Wilson((long)Math.Round(m.CleanAccuracy * test.Count), test.Count),
                    m.RobustAccuracy, robustInterval95 = BinomialInterval.Wilson((long)Math.Round(m.RobustAccuracy * test.Count), test.Count), seed = m.Options?.Seed, m.SelectedEpoch,
                    robustValidationByEpoch = m.RobustValidationByEpoch.Select(p => new { epoch = p.Epoch, accuracy = p.RobustValidationAccuracy }),
                }),
                seedGroups,
            };
            AtomicFile.WriteAllText(Path.Combine(directory, "comparison.json"), System.Text.Json.JsonSerializer.Serialize(document, JsonFiles.Options));
            if (result.GetValue(json))
            {
                Ui.WriteJson(document);
                return 0;
            }
            var table = new Table().Title($"{test.Count} test images; robust = worst case of {Markup.Escape(description)}").AddColumns("model", "defence", "seed", "clean", "robust (95% CI)", "kept epoch");
            foreach (var m in measured)
            {
                var interval = BinomialInterval.Wilson((long)Math.Round(m.RobustAccuracy * test.Count), test.Count);
                table.AddRow(Markup.Escape(m.Model), m.Defense, m.Options?.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", Ui.Percent(m.CleanAccuracy),
                    $"{Ui.Percent(m.RobustAccuracy)} ({Ui.Percent(interval.Low)}–{Ui.Percent(interval.High)})", m.SelectedEpoch?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "last");
            }
            Ui.Out.Write(table);
            foreach (var group in seedGroups)
                Ui.Out.MarkupLineInterpolated($"{group.Models.Count} seeds of one recipe ({string.Join(", ", group.Seeds)}): clean {Spread(group.Clean)}, robust [bold]{Spread(group.Robust)}[/] (mean, 95% t interval over seeds)");
            Ui.Out.MarkupLineInterpolated($"written: {Path.Combine(directory, "comparison.json")}, {string.Join(", ", pictures)}");
            return 0;
        });
        return command;
    }

    private static string Spread(SeedSpread spread) => $"{Ui.Percent(spread.Mean)} (95% CI {Ui.Percent(spread.Interval95.Low)}–{Ui.Percent(spread.Interval95.High)}, sd {100 * spread.StandardDeviation:F2} points)";
}
