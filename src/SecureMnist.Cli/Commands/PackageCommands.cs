using System.CommandLine;
using SecureMnist.Security;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>keys generate, sign, verify, inspect: the life of a signed model package.</summary>
internal static class PackageCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Keys();
        yield return Sign();
        yield return Verify();
        yield return Inspect();
    }

    private static Command Keys()
    {
        var output = new Option<string>("--out") { Description = "Private key file; the public key is written beside it with .pub", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var generate = new Command("generate", "Create an Ed25519 signing key pair (private key readable by the owner only; never overwrites)") { output };
        generate.SetAction(result =>
        {
            using var key = SigningKey.Generate();
            var (privatePath, publicPath) = key.Save(result.GetValue(output)!);
            Ui.Out.MarkupLineInterpolated($"key [bold]{key.Id}[/]: private {privatePath}, public {publicPath}");
            return 0;
        });
        return new Command("keys", "Manage signing keys") { generate };
    }

    private static Command Sign()
    {
        var package = new Argument<string>("package") { Description = "Model package folder" };
        var key = new Option<string>("--key") { Description = "Ed25519 private key (PEM)", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var command = new Command("sign", "Sign a package's manifest (after checking its weights still match it)") { package, key };
        command.SetAction(result =>
        {
            using var signingKey = SigningKey.FromFile(result.GetValue(key)!);
            var manifest = ModelPackage.Sign(result.GetValue(package)!, signingKey);
            Ui.Out.MarkupLineInterpolated($"signed {result.GetValue(package)} ({manifest.Architecture}, weights {manifest.Weights.Sha256[..16]}...) with key [bold]{signingKey.Id}[/]");
            return 0;
        });
        return command;
    }

    private static Command Verify()
    {
        var package = new Argument<string>("package") { Description = "Model package folder" };
        var publicKey = CommonOptions.PublicKey();
        var json = CommonOptions.Json();
        var command = new Command("verify", "Check a package's signature, weights digest, safetensors structure and tensor shapes; exit 1 if it is not trusted") { package, publicKey, json };
        command.SetAction(result =>
        {
            var path = result.GetValue(package)!;
            var key = TrustedPublicKey.FromFile(result.GetValue(publicKey)!);
            var verification = ModelPackage.Verify(path, key);
            if (result.GetValue(json)) Ui.WriteJson(new { package = path, trusted = verification.Trusted, reason = verification.Reason, signer = verification.SignerKeyId });
            else if (verification.Trusted) Ui.Out.MarkupLineInterpolated($"[green]trusted[/] {path}: {verification.Reason}");
            else Ui.Out.MarkupLineInterpolated($"[red]NOT trusted[/] {path}: {verification.Reason}");
            return verification.Trusted ? 0 : 1;
        });
        return command;
    }

    private static Command Inspect()
    {
        var package = new Argument<string>("package") { Description = "Model package folder" };
        var json = CommonOptions.Json();
        var command = new Command("inspect", "Show what a package's manifest claims (read only; use verify to decide trust)") { package, json };
        command.SetAction(result =>
        {
            var manifest = ModelPackage.Inspect(result.GetValue(package)!);
            if (result.GetValue(json))
            {
                Ui.WriteJson(manifest);
                return 0;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("architecture", $"{manifest.Architecture} ({manifest.ParameterCount:N0} parameters)");
            grid.AddRow("weights", $"{manifest.Weights.File}, {manifest.Weights.Bytes:N0} bytes, SHA-256 {manifest.Weights.Sha256}");
            grid.AddRow("created", $"{manifest.CreatedUtc:u}");
            grid.AddRow("code version", manifest.CodeVersion);
            grid.AddRow("dataset", manifest.Dataset ?? "-");
            grid.AddRow("signer key", manifest.SignerKeyId ?? "(unsigned)");
            if (manifest.Metrics is { } m) grid.AddRow("test accuracy", $"{Ui.Percent(m.TestAccuracy)} on {m.TestImages} images (loss {m.TestLoss:F4})");
            if (manifest.Training is { } t) grid.AddRow("training", $"{t.Options.Epochs} epochs, batch {t.Options.BatchSize}, {t.Options.Optimizer} lr {t.Options.LearningRate} ({t.Options.Schedule}), seed {t.Options.Seed}, {t.TrainImages} images");
            Ui.Out.Write(grid);
            var tensors = new Table().AddColumns("tensor", "dtype", "shape");
            foreach (var tensor in manifest.Tensors) tensors.AddRow(tensor.Name, tensor.DType, $"[[{string.Join(", ", tensor.Shape)}]]");
            Ui.Out.Write(tensors);
            return 0;
        });
        return command;
    }
}
