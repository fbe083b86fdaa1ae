using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Privacy;
using SecureMnist.Reporting;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class InvertCommand
{
    public static Command Create()
    {
        var defaults = new InversionOptions();
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = CommonOptions.Dataset();
        var output = new Option<string>("--out") { Description = "PNG of the reconstructions, each beside its nearest member and nearest non-member", Required = true };
        var steps = new Option<int>("--steps") { Description = "Gradient-ascent steps", DefaultValueFactory = _ => defaults.Steps };
        var tv = new Option<double>("--tv") { Description = "Weight of the total-variation prior", DefaultValueFactory = _ => defaults.TotalVariation };
        var reference = new Option<int>("--reference") { Description = "Images per class drawn from the members and, equally many, from the non-members to measure distances against", DefaultValueFactory = _ => defaults.Reference };
        var seed = new Option<int>("--seed") { Description = "Seed for the start and the reference draw", DefaultValueFactory = _ => defaults.Seed };
        var json = CommonOptions.Json();
        var command = new Command("invert", """
            Model inversion: reconstruct a representative input for each class from the model alone (gradient ascent on the class score with
            total-variation and L2 priors), then measure how close each comes to the model's training images (members) against as many
            test images (non-members): nearest L2 distance and best SSIM. Reconstructions systematically closer to members would mean the
            model gives its training data away.
            Example: ./securemnist invert --model models/baseline --out out/inversion.png
            """)
        { model, publicKey, allowUnsigned, dataset, output, steps, tv, reference, seed, json };
        command.SetAction(result =>
        {
            var options = defaults with { Steps = result.GetValue(steps), TotalVariation = result.GetValue(tv), Reference = result.GetValue(reference), Seed = result.GetValue(seed) };
            options.Validate();
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var members = verified.Manifest.Training is { } record ? Trainer.Split(record.Options, data).Train : data.Train;
            if (verified.Manifest.Training is null) Ui.Warning($"{verified.Directory} has no training record; the whole training set stands in for its members");
            var report = ModelInversion.Run(verified.Network, members, data.Test, options);
            var path = result.GetValue(output)!;
            InversionGrid.Save(path, $"model inversion of {verified.Manifest.Architecture} ({options.Steps} steps, TV {options.TotalVariation:G})", report);
            Ui.Info($"reconstructions written to {path}");
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { model = verified.Directory, image = path, referencePerClass = report.ReferencePerClass, closerToMembers = report.CloserToMembers,
                    classes = report.Classes.Select(c => new { c.Label, c.Probability, c.NearestMemberL2, c.NearestNonMemberL2, c.BestMemberSsim, c.BestNonMemberSsim }) });
                return 0;
            }
            var table = new Table().AddColumns("class", "model's p", "nearest member L2", "nearest non-member L2", "best member SSIM", "best non-member SSIM");
            foreach (var c in report.Classes)
                table.AddRow($"{c.Label}", $"{c.Probability:F3}", $"{c.NearestMemberL2:F2}", $"{c.NearestNonMemberL2:F2}", $"{c.BestMemberSsim:F3}", $"{c.BestNonMemberSsim:F3}");
            Ui.Out.Write(table);
            Ui.Out.MarkupLineInterpolated($"{report.CloserToMembers} of {report.Classes.Count} reconstructions are closer to a member than to any non-member ({report.ReferencePerClass} of each per class; about half is what no leakage looks like)");
            return 0;
        });
        return command;
    }
}
