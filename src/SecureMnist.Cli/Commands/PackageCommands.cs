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
        yield return Seal();
        yield return Verify();
        yield return Inspect();
    }

    private const string DefaultEcKey = "keys/model-signing.key";
    private const string DefaultKek = "keys/weights.kek";

    private static Option<string?> Kek(string description) => new("--kek") { Description = description };

    private static Command Seal()
    {
        var package = new Argument<string>("package") { Description = "Model package folder (signed by --public-key)" };
        var kek = Kek($"Key-encryption key: a file, or env:NAME (default: ${KeyEncryptionKey.EnvironmentVariable} when set)");
        var publicKey = CommonOptions.PublicKey();
        var key = new Option<string>("--key") { Description = "Ed25519 private key that signs the sealed package", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var output = new Option<string?>("--out") { Description = "Folder for the sealed package (default: replace the package in place)" };
        var json = CommonOptions.Json();
        var command = new Command("seal", $"""
            Encrypt a package's weights at rest: AES-256-GCM under a fresh data key, the data key wrapped (AES-256-GCM) by the
            key-encryption key (KEK). The new manifest records the sealed file's SHA-256 and the wrapped key, and is signed, so a
            changed ciphertext, a swapped wrapped key or a wrong KEK is refused before anything is decrypted. The plaintext
            weights file is not part of the sealed package. serve opens the weights in memory only (--kek, or ${KeyEncryptionKey.EnvironmentVariable});
            verify checks the signature and the sealed file without the KEK, and everything with it.
            Example: ./securemnist keys generate-kek && ./securemnist seal models/baseline --kek keys/weights.kek --out models/baseline-sealed
            """) { package, kek, publicKey, key, output, json };
        command.SetAction(result =>
        {
            var path = result.GetValue(package)!;
            using var keyEncryptionKey = KeyEncryptionKey.LoadOrFromEnvironment(result.GetValue(kek))
                ?? throw new ArgumentException($"seal needs a key-encryption key: --kek FILE, --kek env:NAME or ${KeyEncryptionKey.EnvironmentVariable} (make one with ./securemnist keys generate-kek)");
            using var signingKey = SigningKey.FromFile(result.GetValue(key)!);
            var target = result.GetValue(output) ?? path;
            var manifest = ModelPackage.Seal(path, TrustedPublicKey.FromFile(result.GetValue(publicKey)!), signingKey, keyEncryptionKey, target);
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { package = target, sealedFrom = path, kekId = manifest.Sealed!.KekId, algorithm = manifest.Sealed.Algorithm, weights = manifest.Weights, signer = signingKey.Id });
                return 0;
            }
            Ui.Out.MarkupLineInterpolated($"sealed {path} into {target}: {manifest.Weights.File} ({manifest.Weights.Bytes:N0} bytes), KEK [bold]{manifest.Sealed!.KekId}[/], signed by [bold]{signingKey.Id}[/]");
            return 0;
        });
        return command;
    }

    private static Command Keys()
    {
        var output = new Option<string>("--out") { Description = "Private key file; the public key is written beside it with .pub (default keys/signing.key, or keys/model-signing.key for p256)" };
        var algorithm = new Option<string>("--algorithm") { Description = "ed25519 (our packages, audit checkpoints) or p256 (ECDSA, for the OpenSSF model-signing format)", DefaultValueFactory = _ => "ed25519" };
        algorithm.AcceptOnlyFromAmong("ed25519", "p256");
        var generate = new Command("generate", "Create a signing key pair (private key readable by the owner only; never overwrites)") { output, algorithm };
        generate.SetAction(result =>
        {
            if (result.GetValue(algorithm) == "p256")
            {
                var (ecPrivate, ecPublic) = ModelSigning.GenerateKey(result.GetValue(output) ?? DefaultEcKey);
                Ui.Out.MarkupLineInterpolated($"P-256 key: private {ecPrivate}, public {ecPublic}");
                return 0;
            }
            using var key = SigningKey.Generate();
            var (privatePath, publicPath) = key.Save(result.GetValue(output) ?? TrainCommand.DefaultKey);
            Ui.Out.MarkupLineInterpolated($"key [bold]{key.Id}[/]: private {privatePath}, public {publicPath}");
            return 0;
        });
        var kekOutput = new Option<string>("--out") { Description = "KEK file (one line of base64, readable by the owner only; never overwritten)", DefaultValueFactory = _ => DefaultKek };
        var generateKek = new Command("generate-kek", $"""
            Create a key-encryption key (32 random bytes) for sealing packages. Keep it apart from the packages it seals; a service
            can instead take it from an environment variable: export {KeyEncryptionKey.EnvironmentVariable}="$(cat keys/weights.kek)".
            """) { kekOutput };
        generateKek.SetAction(result =>
        {
            using var kek = KeyEncryptionKey.Generate();
            kek.Save(result.GetValue(kekOutput)!);
            Ui.Out.MarkupLineInterpolated($"key-encryption key [bold]{kek.Id}[/] written to {result.GetValue(kekOutput)}");
            return 0;
        });
        return new Command("keys", "Manage signing keys and key-encryption keys") { generate, generateKek };
    }

    private static Option<string> Format()
    {
        var format = new Option<string>("--format")
        {
            Description = "native: our Ed25519 signature.json; model-signing: also model.sig in the OpenSSF model-signing v1.0 layout (Sigstore bundle, DSSE, in-toto, ECDSA P-256)",
            DefaultValueFactory = _ => "native",
        };
        format.AcceptOnlyFromAmong("native", "model-signing");
        return format;
    }

    private static Command Sign()
    {
        var package = new Argument<string>("package") { Description = "Model package folder" };
        var key = new Option<string>("--key") { Description = "Ed25519 private key (PEM)", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var ecKey = new Option<string>("--ec-key") { Description = "P-256 private key for --format model-signing (created on first use at the default path)", DefaultValueFactory = _ => DefaultEcKey };
        var format = Format();
        var command = new Command("sign", """
            Sign a package's manifest (after checking its weights still match it). With --format model-signing, also write
            model.sig covering every file of the package, for teams that verify with the OpenSSF model-signing tool.
            Example: ./securemnist sign models/baseline --format model-signing
            """) { package, key, ecKey, format };
        command.SetAction(result =>
        {
            var path = result.GetValue(package)!;
            using var signingKey = SigningKey.FromFile(result.GetValue(key)!);
            var manifest = ModelPackage.Sign(path, signingKey);
            Ui.Out.MarkupLineInterpolated($"signed {path} ({manifest.Architecture}, weights {manifest.Weights.Sha256[..16]}...) with key [bold]{signingKey.Id}[/]");
            if (result.GetValue(format) == "model-signing")
            {
                var ecKeyPath = result.GetValue(ecKey)!;
                if (!File.Exists(ecKeyPath) && ecKeyPath == DefaultEcKey)
                {
                    ModelSigning.GenerateKey(ecKeyPath);
                    Ui.Info($"created P-256 key {ecKeyPath} (public key {Path.ChangeExtension(ecKeyPath, ".pub")})");
                }
                var signature = ModelSigning.Sign(path, ecKeyPath);
                Ui.Out.MarkupLineInterpolated($"wrote {signature} (model-signing v1.0, ECDSA P-256)");
            }
            return 0;
        });
        return command;
    }

    private static Command Verify()
    {
        var package = new Argument<string>("package") { Description = "Model package folder" };
        var publicKey = CommonOptions.PublicKey();
        var ecPublicKey = new Option<string>("--ec-public-key") { Description = "P-256 public key for --format model-signing", DefaultValueFactory = _ => Path.ChangeExtension(DefaultEcKey, ".pub") };
        var format = Format();
        var provenance = new Option<bool>("--provenance") { Description = "Also follow the chain: signer, embedded training record and its digest, the run record on disk, the dataset re-hashed against the digests the model was trained on, the code commit in this repository" };
        var runs = new Option<string>("--runs") { Description = "Folder of training run records", DefaultValueFactory = _ => "runs" };
        var kek = Kek($"Key-encryption key of a sealed package (a file, or env:NAME; default: ${KeyEncryptionKey.EnvironmentVariable} when set): with it the weights are opened in memory and checked in full");
        var json = CommonOptions.Json();
        var command = new Command("verify", """
            Check a package's signature, weights digest, safetensors structure and tensor shapes; exit 1 if it is not trusted.
            --format model-signing checks model.sig (OpenSSF model-signing v1.0) instead of our Ed25519 signature.
            Example: ./securemnist verify models/baseline --provenance
            A sealed package verifies without its KEK (signature and the sealed file's digest), and says so.
            """) { package, publicKey, ecPublicKey, format, provenance, runs, kek, json };
        command.SetAction(result =>
        {
            var path = result.GetValue(package)!;
            if (result.GetValue(format) == "model-signing") return VerifyModelSigning(path, result.GetValue(ecPublicKey)!, result.GetValue(json));
            var key = TrustedPublicKey.FromFile(result.GetValue(publicKey)!);
            if (result.GetValue(provenance))
            {
                var report = ProvenanceVerifier.Verify(path, key, result.GetValue(CommonOptions.DataRoot)!, result.GetValue(runs)!, Directory.GetCurrentDirectory());
                if (result.GetValue(json)) Ui.WriteJson(new { package = path, trusted = report.Ok, checks = report.Checks });
                else
                {
                    var table = new Table().AddColumns("link", "result", "detail");
                    foreach (var check in report.Checks)
                    {
                        var status = check.Status switch { CheckStatus.Passed => "[green]passed[/]", CheckStatus.Failed => "[red]FAILED[/]", _ => "[yellow]skipped[/]" };
                        table.AddRow(new Markup(check.Name), new Markup(status), new Markup(Markup.Escape(check.Detail)));
                    }
                    Ui.Out.Write(table);
                    Ui.Out.MarkupLine(report.Ok ? "[green]provenance chain holds[/] (skipped links could not be checked here)" : "[red]provenance chain is broken[/]");
                }
                return report.Ok ? 0 : 1;
            }
            using var keyEncryptionKey = KeyEncryptionKey.LoadOrFromEnvironment(result.GetValue(kek));
            var verification = ModelPackage.Verify(path, key, keyEncryptionKey);
            if (result.GetValue(json)) Ui.WriteJson(new { package = path, trusted = verification.Trusted, reason = verification.Reason, signer = verification.SignerKeyId });
            else if (verification.Trusted) Ui.Out.MarkupLineInterpolated($"[green]trusted[/] {path}: {verification.Reason}");
            else Ui.Out.MarkupLineInterpolated($"[red]NOT trusted[/] {path}: {verification.Reason}");
            return verification.Trusted ? 0 : 1;
        });
        return command;
    }

    private static int VerifyModelSigning(string path, string publicKey, bool json)
    {
        var verification = ModelSigning.Verify(path, publicKey);
        var reason = verification.Reason;
        var trusted = verification.Trusted;
        if (trusted)
        {
            // The files are authentic; now the package itself must be consistent (weights digest, structure, shapes).
            try
            {
                using var model = ModelPackage.LoadUnsigned(path);
                reason += $"; weights SHA-256 matches the manifest; {model.Manifest.Tensors.Count} tensors fit {model.Manifest.Architecture}";
            }
            catch (Exception e) when (e is ModelPackageException or SafetensorsException)
            {
                trusted = false;
                reason = $"model.sig verifies but the package is inconsistent: {e.Message}";
            }
        }
        if (json) Ui.WriteJson(new { package = path, format = "model-signing", trusted, reason, rootDigest = verification.RootDigest, files = verification.Files });
        else if (trusted) Ui.Out.MarkupLineInterpolated($"[green]trusted[/] {path}: {reason}");
        else Ui.Out.MarkupLineInterpolated($"[red]NOT trusted[/] {path}: {reason}");
        return trusted ? 0 : 1;
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
            if (manifest.Spec is { } spec) grid.AddRow("layers", Markup.Escape(spec.Describe()));
            grid.AddRow("weights", $"{manifest.Weights.File}, {manifest.Weights.Bytes:N0} bytes, SHA-256 {manifest.Weights.Sha256}");
            if (manifest.Sealed is { } seal) grid.AddRow("sealed", $"{seal.Algorithm}; KEK id {seal.KekId}");
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
