using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Privacy;
using SecureMnist.Reporting;
using SecureMnist.Runtime;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class MembershipCommand
{
    public static Command Create()
    {
        var defaults = new MembershipOptions();
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = CommonOptions.Dataset();
        var perSide = new Option<int>("--per-side") { Description = "Members and non-members each, drawn at random (balanced)", DefaultValueFactory = _ => defaults.PerSide };
        var shadows = new Option<int>("--shadows") { Description = "LiRA shadow models, trained with the model's own recipe (even; 0: the loss-threshold attack only)", DefaultValueFactory = _ => defaults.Shadows };
        var shadowEpochs = new Option<int?>("--shadow-epochs") { Description = "Epochs per shadow instead of the model's (cheaper, weaker shadows; the report says so)" };
        var shadowFiller = new Option<int?>("--shadow-filler") { Description = "Non-evaluated training images each shadow also trains on (default: enough to match the model's training-set size)" };
        var shadowDirectory = new Option<string?>("--shadow-dir") { Description = "Where shadows are cached and resumed (default: runs/membership/PACKAGE-WEIGHTS)" };
        var shard = new Option<string?>("--shard")
        {
            Description = "Train only shard K of N of the shadows (K/N: shadows K, K+N, ...), so N processes or machines sharing --shadow-dir train them in parallel; the shard that finds them all finished prints the report",
        };
        var seed = new Option<int>("--seed") { Description = "Seed for the balanced draw and the shadows' halves", DefaultValueFactory = _ => defaults.Seed };
        var plot = new Option<string?>("--plot") { Description = "Write the ROC curves (log-log, with chance and any DP bound) to this file: PNG, or SVG when it ends in .svg" };
        var json = CommonOptions.Json();
        var command = new Command("membership", """
            Membership inference: can an attacker tell the model's training images from images it never saw? On a balanced random set of
            members (from the training images its signed record names) and test-set non-members, runs the loss-threshold attack and LiRA
            (Carlini et al. 2022) with shadow models of the model's architecture and recipe, and reports ROC AUC and the true-positive rate
            at 0.1% and 1% false positives. For a DP-SGD model it checks the rates against the bound e^epsilon FPR + delta.
            Shadows are cached: an interrupted run resumes, and a second run reuses them.
            Example: ./securemnist membership --model models/baseline --shadows 8 --plot out/membership.png
            Two processes at one thread each train the shadows in about half the time of one:
              ./securemnist membership --model M --shard 1/2 --threads 1 & ./securemnist membership --model M --shard 2/2 --threads 1
            """)
        { model, publicKey, allowUnsigned, dataset, perSide, shadows, shadowEpochs, shadowFiller, shadowDirectory, shard, seed, plot, json };
        command.SetAction(result =>
        {
            var options = new MembershipOptions(result.GetValue(perSide), result.GetValue(shadows), result.GetValue(seed), result.GetValue(shadowFiller), result.GetValue(shadowEpochs));
            options.Validate();
            var shardToTrain = result.GetValue(shard) is { } text ? Shard.Parse(text) : null;
            if (shardToTrain is not null && options.Shadows == 0) throw new ArgumentException("--shard splits the shadow models between processes; with --shadows 0 there are none");
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var record = verified.Manifest.Training
                ?? throw new ArgumentException($"{verified.Directory} has no training record, so which images it trained on is unknown; membership needs a package this tool trained");
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            if (data.Name != record.Dataset) throw new ArgumentException($"the model was trained on {record.Dataset}, not {data.Name}; pass --dataset {record.Dataset}");
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(verified.Directory)));
            var shadowsAt = result.GetValue(shadowDirectory) ?? Path.Combine("runs", "membership", $"{name}-{verified.Manifest.Weights.Sha256[..12]}");
            var progress = new Progress<string>(Ui.Info);
            var experiment = new MembershipExperiment(options, data, shadowsAt);
            if (shardToTrain is not null)
            {
                var trained = experiment.TrainShadows(record, shardToTrain, progress, CommandRunner.Cancellation.Token);
                Ui.Info($"shard {trained.Shard}: shadows {string.Join(", ", trained.Owned.Select(k => k + 1))} of {options.Shadows} are in {shadowsAt} ({trained.Trained} trained, {trained.Reused} reused)");
                if (!trained.Complete)
                {
                    var rest = $"shadows {string.Join(", ", trained.Missing.Select(k => k + 1))} are not finished yet; when every shard has finished, the same command without --shard reports (it reuses the shadows)";
                    if (result.GetValue(json))
                        Ui.WriteJson(new { model = verified.Directory, shadowDirectory = shadowsAt, shard = trained.Shard.ToString(), owned = trained.Owned.Select(k => k + 1), trained.Trained, trained.Reused, missing = trained.Missing.Select(k => k + 1), complete = false });
                    else
                        Ui.Success($"shard {trained.Shard} done; {rest}");
                    return 0;
                }
                Ui.Info("every shadow is finished: reporting");
            }
            var report = experiment.Run(name, verified.Network, record, progress, CommandRunner.Cancellation.Token);
            if (result.GetValue(plot) is { } plotPath)
            {
                MembershipPlot.Save(plotPath, report);
                Ui.Info($"ROC curves written to {plotPath}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { model = verified.Directory, shadowDirectory = options.Shadows > 0 ? shadowsAt : null, report });
                return 0;
            }
            Ui.Out.MarkupLineInterpolated($"[bold]{verified.Directory}[/]: {report.Members} members ({report.MemberSource}) against {report.NonMembers} non-members ({report.NonMemberSource}); accuracy {Ui.Percent(report.TargetTrainAccuracy)} on the members, {Ui.Percent(report.TargetTestAccuracy)} on the non-members");
            var table = new Table().AddColumns("attack", "ROC AUC", "TPR at 0.1% FPR", "TPR at 1% FPR", "best balanced accuracy");
            foreach (var a in report.Attacks) table.AddRow(Markup.Escape(a.Attack), $"{a.Auc:F4}", Ui.Percent(a.TprAtFpr0001), Ui.Percent(a.TprAtFpr001), Ui.Percent(a.BalancedAccuracy));
            Ui.Out.Write(table);
            if (report.Shadows is { } s)
                Ui.Out.MarkupLineInterpolated($"shadows: {s.Count} x {s.Architecture} ({s.Recipe}, {s.Epochs} epochs) on {s.TrainImagesEach} images each; {s.Trained} trained, {s.Reused} reused from {shadowsAt}");
            if (report.Bound is { } bound)
                Ui.Out.MarkupLineInterpolated($"DP bound at ({bound.Epsilon:F3}, {bound.Delta:G3}): TPR at most {Ui.Percent(bound.MaxTruePositiveRate(0.001))} at 0.1% FPR and {Ui.Percent(bound.MaxTruePositiveRate(0.01))} at 1%: {(report.WithinBound == true ? "[green]every attack within it[/]" : "[red]an attack exceeds it[/]")}");
            return 0;
        });
        return command;
    }
}
