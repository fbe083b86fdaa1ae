using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Interop;
using SecureMnist.Modeling;
using SecureMnist.Security;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>import and scan: bringing models from elsewhere in without ever executing them.</summary>
internal static class InteropCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Import();
        yield return Scan();
        yield return Dependencies();
    }

    /// <summary>The lock files given, else the repository's (in a checkout) or the ones built into the tool, saying which.</summary>
    private static IReadOnlyList<ShippedLocks.Input> LockFiles(string[]? given)
    {
        if (given is { Length: > 0 }) return [.. given.Select(f => new ShippedLocks.Input(f, File.ReadAllBytes(f)))];
        var files = ShippedLocks.LockFiles(Directory.GetCurrentDirectory());
        if (files[0].Name.StartsWith("built-in:", StringComparison.Ordinal))
            Ui.Info($"not in a checkout (no src/*/packages.lock.json here): reading the {files.Count} lock files built into this securemnist");
        return files;
    }

    private static Command Dependencies()
    {
        var lockFile = new Option<string[]>("--lock-file") { Description = "Lock files to read (default: every src/*/packages.lock.json)", AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Where to write the CycloneDX JSON", DefaultValueFactory = _ => "artifacts/sbom.cdx.json" };
        var sbom = new Command("sbom", """
            Write the tool's software bill of materials (CycloneDX 1.5 JSON) from the NuGet lock files of the shipped
            projects: every package, direct or transitive, with purl, SHA-512 and dependency graph. The test command
            writes it to artifacts/sbom.cdx.json on every run.
            Example: ./securemnist deps sbom --out artifacts/sbom.cdx.json
            """) { lockFile, output };
        sbom.SetAction(result =>
        {
            var lockFiles = LockFiles(result.GetValue(lockFile));
            var components = CycloneDxSbom.ReadLockFiles(lockFiles.Select(f => (f.Name, f.Bytes)));
            var version = typeof(CycloneDxSbom).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
                .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
            var document = CycloneDxSbom.Create(version, components);
            var path = result.GetValue(output)!;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            SecureMnist.IO.AtomicFile.WriteAllText(path, document.ToJsonString(new System.Text.Json.JsonSerializerOptions
            {
                WriteIndented = true,
                Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            }));
            Ui.Out.MarkupLineInterpolated($"wrote {path}: {components.Count} packages ({components.Count(c => c.Direct)} direct) from {lockFiles.Count} lock files");
            return 0;
        });

        var auditLockFile = new Option<string[]>("--lock-file") { Description = "Lock files to read (default: every src/*/packages.lock.json)", AllowMultipleArgumentsPerToken = true };
        var advisories = new Option<string?>("--advisories") { Description = "Advisory snapshot (JSON) [default: build/advisories.json in a checkout, else the one built into the tool]" };
        var auditSarif = CommonSarif();
        var json = CommonOptions.Json();
        var audit = new Command("audit", """
            Check every package the lock files pin, transitive ones included, against the advisory snapshot in the
            repository; exit 1 on any hit. This is the offline half of the gate: NuGetAudit (on in Directory.Build.props)
            and dotnet list package --vulnerable cover sources that publish advisory data.
            Example: ./securemnist deps audit
            """) { auditLockFile, advisories, auditSarif, json };
        audit.SetAction(result =>
        {
            var lockFiles = LockFiles(result.GetValue(auditLockFile));
            var components = CycloneDxSbom.ReadLockFiles(lockFiles.Select(f => (f.Name, f.Bytes)));
            // The snapshot named, else the repository's, else the one built into the tool.
            var snapshot = result.GetValue(advisories) is { } named ? new ShippedLocks.Input(named, File.ReadAllBytes(named)) : ShippedLocks.Advisories(Directory.GetCurrentDirectory());
            var known = PackageAdvisories.Parse(snapshot.Bytes, snapshot.Name);
            var hits = PackageAdvisories.Check(components, known);
            if (result.GetValue(auditSarif) is { } sarifPath)
                SecureMnist.Reporting.Sarif.Save(sarifPath, SecureMnist.Reporting.SarifFindings.Advisories(hits, lockFiles[0].Name, CodeVersion.Current()));
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { packages = components.Count, advisories = known.Count, vulnerable = hits.Select(h => new { package = h.Component.Name, version = h.Component.Version, h.Advisory.Id, h.Advisory.Severity, h.Advisory.Vulnerable, h.Advisory.Summary }) });
                return hits.Count == 0 ? 0 : 1;
            }
            foreach (var hit in hits)
                Ui.Out.MarkupLineInterpolated($"[red]vulnerable[/] {hit.Component.Name} {hit.Component.Version}: {hit.Advisory.Id} ({hit.Advisory.Severity}, versions {hit.Advisory.Vulnerable}) {hit.Advisory.Summary}");
            var verdict = hits.Count == 0 ? "[green]none vulnerable[/]" : $"[red]{hits.Count} vulnerable[/]";
            Ui.Out.MarkupLine($"{components.Count} packages from {lockFiles.Count} lock files checked against {known.Count} advisories: {verdict}");
            return hits.Count == 0 ? 0 : 1;
        });
        return new Command("deps", "The tool's own dependencies: software bill of materials and the offline vulnerable-package check") { sbom, audit };
    }

    private static Command Import()
    {
        var from = new Option<string?>("--from-pytorch") { Description = "PyTorch state_dict file written by torch.save (zip format, PyTorch 1.6+)" };
        var fromOnnx = new Option<string?>("--from-onnx") { Description = "ONNX model (standard operators, weights inside the file) taking [N, 1, 28, 28] or [N, 784] pixels in [0, 1] and giving 10 logits; run by ONNX Runtime, for evaluate, serve and black-box attacks" };
        var arch = new Option<string>("--arch") { Description = $"Architecture the names map onto: {string.Join(", ", Architectures.Names)}", DefaultValueFactory = _ => Architectures.Default };
        var spec = new Option<string?>("--arch-spec") { Description = $"A layer list (JSON) for a network we do not define: {string.Join(", ", ArchitectureSpec.LayerTypes)} with PyTorch's argument names; recorded in the signed manifest (replaces --arch). '{SpecInference.Keyword}' infers it from an nn.Sequential's shapes" };
        var output = new Option<string>("--out") { Description = "Package folder to write", DefaultValueFactory = _ => "models/imported" };
        var key = new Option<string>("--key") { Description = "Ed25519 private key that signs the package (created on first use at the default path)", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var json = CommonOptions.Json();
        var command = new Command("import", """
            Import a PyTorch state_dict as a signed package. The file is read by a restricted unpickler (like
            torch.load(weights_only=True)): only the opcodes and globals tensors and ordered dicts need are accepted,
            nothing in the file is ever executed, and anything else is refused naming the global or opcode and its offset.
            An nn.Sequential state_dict (names 0.weight, 2.weight, ...) is read as --arch when its layers with weights match
            the architecture's in order and shape; the command says what that assumes (activations, pooling, normalisation).
            Any other plain CNN is described by --arch-spec, a JSON layer list with PyTorch's names, e.g. LeNet-5:
              {"normalize": {"mean": 0.1307, "std": 0.3081},
               "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 5, "padding": 2}, {"type": "Tanh"},
                          {"type": "AvgPool2d", "kernel_size": 2}, ..., {"type": "Flatten"}, {"type": "Linear", "in_features": 400,
                          "out_features": 120}, ..., {"type": "Linear", "in_features": 84, "out_features": 10}]}
            Layer types: Conv2d, Linear, BatchNorm2d, ReLU, Tanh, MaxPool2d, AvgPool2d, Flatten, Dropout. "normalize" is the
            scaling the model's inputs had in training (leave it out for raw [0, 1] pixels). Every layer of an nn.Sequential,
            with weights or not, has its place in the list, so tensor names line up (0.weight, 3.running_mean, ...); any other
            naming is paired module by module in the file's order. Shapes are checked from a 1x28x28 image to 10 logits.
            Example: ./securemnist import --from-pytorch mnist_cnn.pt --arch seed-cnn --out models/imported
            An ONNX model (--from-onnx) is kept as it is, scanned first: only standard operators (no custom-op library) and
            weights inside the file; it must take [N, 1, 28, 28] or [N, 784] pixels in [0, 1] and give 10 logits. It has no
            gradients, so evaluate, serve and the black-box attacks (square, hopskipjump) run on it, the white-box ones do not.
            With --arch-spec infer (or without --arch, for an nn.Sequential that is none of ours) the layer list is inferred:
            the weights give the Conv2d, Linear and BatchNorm2d layers, the gaps in the indices the layers without weights;
            every reading the shapes allow (activation, pooling, padding, Flatten's place, input scaling) is scored on 1,000
            MNIST test images, and the best is taken only when it is clearly best (lowest loss, the runner-up's at least 1.25x),
            else the import is refused naming the leading readings. The command prints the list it took.
            Example: ./securemnist import --from-pytorch lenet5.pth --arch-spec lenet5.json --out models/lenet5
            Example: ./securemnist import --from-pytorch sequential.pth --arch-spec infer --out models/mine
            Example: ./securemnist import --from-onnx model.onnx --out models/onnx
            """) { from, fromOnnx, arch, spec, output, key, json };
        command.SetAction(result =>
        {
            var keyPath = result.GetValue(key)!;
            var (signingKey, _) = TrainingPipeline.OpenOrCreateKey(keyPath, createIfMissing: keyPath == TrainCommand.DefaultKey);
            using (signingKey)
            {
                if (result.GetValue(spec) is not null && result.GetResult(arch) is { Implicit: false })
                    throw new ArgumentException("--arch and --arch-spec name the network twice: give one");
                if ((result.GetValue(from) is null) == (result.GetValue(fromOnnx) is null))
                    throw new ArgumentException("give one model file: --from-pytorch FILE.pth or --from-onnx FILE.onnx");
                if (result.GetValue(fromOnnx) is { } onnxPath) return ImportOnnx(onnxPath, result.GetValue(output)!, signingKey, result.GetValue(json));
                // The readings an inferred layer list weighs are scored on MNIST test images (./securemnist data fetch).
                LabeledImages Check()
                {
                    Ui.Info($"inferring the layer list from the nn.Sequential's shapes, scoring each reading on {SpecInference.CheckImages:N0} MNIST test images");
                    return new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist").Test.Take(SpecInference.CheckImages);
                }
                var (file, package) = (result.GetValue(from)!, result.GetValue(output)!);
                var imported = result.GetValue(spec) switch
                {
                    SpecInference.Keyword => PyTorchImport.ImportInferred(file, Check(), package, signingKey),
                    { } specPath => PyTorchImport.Import(file, ArchitectureSpec.Load(specPath), package, signingKey),
                    null => PyTorchImport.Import(file, result.GetValue(arch)!, package, signingKey, inferWith: result.GetResult(arch) is { Implicit: false } ? null : Check),
                };
                if (result.GetValue(json))
                {
                    Ui.WriteJson(new
                    {
                        package = result.GetValue(output), manifest = imported.Manifest, sourceNames = imported.SourceNames, note = imported.Note,
                        inferred = imported.Inference is { } inference ? new { spec = inference.Spec, readings = inference.Candidates.Count, leading = inference.Candidates.Take(5) } : null,
                    });
                    return 0;
                }
                var source = imported.Manifest.ImportedFrom!;
                if (imported.Note is { } note) Ui.Warning(note);
                Ui.Out.MarkupLineInterpolated($"[green]imported[/] {source.File} (SHA-256 {source.Sha256[..16]}...) as {imported.Manifest.Architecture}: {imported.SourceNames.Count} tensors, {imported.Manifest.ParameterCount:N0} parameters");
                Ui.Out.MarkupLineInterpolated($"pickle globals (all allowlisted): {string.Join(", ", source.PickleGlobals)}");
                Ui.Out.MarkupLineInterpolated($"wrote {result.GetValue(output)}, signed by key [bold]{signingKey.Id}[/]; next: ./securemnist evaluate --model {result.GetValue(output)}");
                return 0;
            }
        });
        return command;
    }

    private static int ImportOnnx(string path, string output, SigningKey signingKey, bool json)
    {
        var manifest = OnnxImport.Import(path, output, signingKey);
        var source = manifest.ImportedFrom!;
        if (json)
        {
            Ui.WriteJson(new { package = output, manifest });
            return 0;
        }
        Ui.Out.MarkupLineInterpolated($"[green]imported[/] {source.File} (SHA-256 {source.Sha256[..16]}...) as onnx: {manifest.Tensors.Count} initializers, {manifest.ParameterCount:N0} parameters");
        Ui.Out.MarkupLineInterpolated($"wrote {output}, signed by key [bold]{signingKey.Id}[/]; next: ./securemnist evaluate --model {output}");
        return 0;
    }

    private static Command Scan()
    {
        var file = new Argument<string>("file") { Description = "Model file or package folder" };
        var sarif = CommonSarif();
        var json = CommonOptions.Json();
        var failOn = new Option<string>("--fail-on")
        {
            Description = "Exit 1 only for findings at or above this severity (low: any finding, as ModelScan; critical: only what runs code)",
            DefaultValueFactory = _ => "low",
        };
        failOn.AcceptOnlyFromAmong([.. ScanSeverities.Names]);
        var command = new Command("scan", """
            Say what a model file is (securemnist package, safetensors, PyTorch zip or legacy pickle, other pickle, ONNX,
            unknown) and whether it is safe to load, listing every global a pickle references, or an ONNX model's operators
            and weights: an operator outside the standard domains (a native custom-op library) or external data outside the
            model's folder is an issue. Nothing in the file is executed.
            Each finding has a severity, as ModelScan's: critical runs code when loaded (eval, exec, os, subprocess... in a
            pickle; a custom-op library in ONNX), high is exploitable without code (network modules, data read from outside
            the folder) or a file that could not be shown safe, medium a global outside the allowlist not known to be
            harmful, low a refusal for the format alone. --fail-on sets the severity that fails the scan.
            Exit codes (as ModelScan's): 0 safe (or findings below --fail-on), 1 issues found (not safe to load), 2 scan
            error (unreadable), 3 nothing supported (not a model format scan knows), 4 usage error.
            Example: ./securemnist scan downloaded.pth --sarif scan.sarif
            Gate:    ./securemnist scan downloaded.pth --fail-on high     (exit 1 on high or critical findings)
            """) { file, sarif, json, failOn };
        command.SetAction(result =>
        {
            var scan = ModelFileScanner.Scan(result.GetValue(file)!);
            var threshold = ScanSeverities.Parse(result.GetValue(failOn)!);
            var exitCode = scan.SafeToLoad ? ExitCodes.Success : scan.Kind == ModelFileKind.Unknown ? ExitCodes.ScanNothingSupported
                : scan.FailsAt(threshold) ? ExitCodes.ScanIssuesFound : ExitCodes.Success;
            if (result.GetValue(sarif) is { } sarifPath) SecureMnist.Reporting.Sarif.Save(sarifPath, SecureMnist.Reporting.SarifFindings.Scan(scan, CodeVersion.Current()));
            if (result.GetValue(json))
            {
                Ui.WriteJson(scan);
                return exitCode;
            }
            Ui.Out.MarkupLineInterpolated($"{scan.Path}: [bold]{scan.KindDescription}[/]");
            if (scan.SafeToLoad) Ui.Out.MarkupLineInterpolated($"[green]safe[/]: {scan.Verdict}");
            else Ui.Out.MarkupLineInterpolated($"[red]NOT safe[/]: {scan.Verdict}");
            if (scan.Severity is { } worst)
                Ui.Out.MarkupLineInterpolated($"severity [bold]{ScanSeverities.Name(worst)}[/] ({scan.Findings.Count} finding(s)){(scan.FailsAt(threshold) ? "" : $"; below --fail-on {ScanSeverities.Name(threshold)}, so the scan passes")}");
            if (scan.Globals.Count > 0)
            {
                var table = new Table().AddColumns("global", "byte", "allowed");
                foreach (var global in scan.Globals) table.AddRow(Markup.Escape(global.FullName), global.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture), global.Allowed ? "yes" : "[red]no[/]");
                Ui.Out.Write(table);
            }
            foreach (var problem in scan.Problems.Skip(1)) Ui.Out.MarkupLineInterpolated($"  also: {problem}");
            foreach (var tensor in scan.Tensors) Ui.Out.MarkupLineInterpolated($"  {tensor}");
            return exitCode;
        });
        return command;
    }

    /// <summary>--sarif FILE, the same on every verb that reports findings.</summary>
    internal static Option<string?> CommonSarif() => new("--sarif") { Description = "Also write the findings as SARIF 2.1.0 (for code-scanning UIs) to this file" };
}
