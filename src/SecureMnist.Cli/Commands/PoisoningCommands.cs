using System.CommandLine;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.IO;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>poison, backdoor, detect-poison, sanitize, strip: the training-data poisoning experiment, verb by verb.</summary>
internal static class PoisoningCommands
{
    private static readonly Dictionary<string, PoisonMode> Modes = new()
    {
        ["dirty-label"] = PoisonMode.DirtyLabel, ["clean-label"] = PoisonMode.CleanLabel, ["label-flip"] = PoisonMode.LabelFlip,
        ["clean-label-adversarial"] = PoisonMode.CleanLabelAdversarial, ["source-specific"] = PoisonMode.SourceSpecific,
    };

    private static readonly Dictionary<string, PoisonDetectionMethod> Methods =
        Enum.GetValues<PoisonDetectionMethod>().ToDictionary(PoisonDetector.MethodName);

    public static IEnumerable<Command> Create() => [Poison(), Backdoor(), DetectPoison(), Sanitize(), Strip()];

    private static Command Poison()
    {
        var dataset = CommonOptions.Dataset();
        var output = new Option<string>("--out") { Description = "Folder to write the poisoned copy to (a dataset folder: IDX files, manifest.json, poison.json)", DefaultValueFactory = _ => "data/mnist-backdoor" };
        var mode = new Option<string>("--mode")
        {
            Description = "dirty-label: triggered images of other classes relabelled as the target; clean-label: the seeds' variant, trigger on images of the target class, labels unchanged; " +
                "clean-label-adversarial: Turner et al., target images first perturbed by PGD against --surrogate, then triggered, labels unchanged; " +
                "source-specific: TaCT, triggered images of --sources relabelled plus --covers triggered images of other classes with their true labels; label-flip: images of other classes relabelled, no trigger",
            DefaultValueFactory = _ => "dirty-label",
        };
        mode.AcceptOnlyFromAmong([.. Modes.Keys]);
        var count = new Option<int>("--count") { Description = "Training samples to poison", DefaultValueFactory = _ => 100 };
        var target = new Option<int>("--target") { Description = "Class the backdoor or the flipped labels point to", DefaultValueFactory = _ => 7 };
        var sources = new Option<string?>("--sources") { Description = "Comma-separated source classes (default: every class but the target; source-specific: the class after the target)" };
        var (size, row, column, pattern, intensity) = TriggerOptions();
        var alpha = new Option<double>("--trigger-alpha") { Description = "Blend trigger: the random pattern's weight, (0, 1] (Chen et al. 2017: 0.1-0.2)", DefaultValueFactory = _ => BackdoorTrigger.Default.Alpha };
        var surrogate = new Option<string?>("--surrogate") { Description = "clean-label-adversarial: the attacker's own model package the target images are perturbed against" };
        var publicKey = CommonOptions.PublicKey();
        var hardenEps = new Option<double>("--harden-eps") { Description = "clean-label-adversarial: L-inf budget of the perturbation, (0, 1]", DefaultValueFactory = _ => 0.3 };
        var covers = new Option<int>("--covers") { Description = "source-specific: triggered cover samples of other classes that keep their labels (default: as many as --count)" , DefaultValueFactory = _ => -1 };
        var coverClasses = new Option<string?>("--cover-classes") { Description = "source-specific: comma-separated cover classes (default: every class that is neither a source nor the target)" };
        var seed = new Option<int>("--seed") { Description = "Seed that picks the poisoned samples", DefaultValueFactory = _ => 1 };
        var preview = new Option<string?>("--preview") { Description = "Write a PNG of some poisoned training samples" };
        var json = CommonOptions.Json();
        var command = new Command("poison", """
            Write a poisoned copy of a training set, with poison.json listing every changed sample (for scoring defences).
            The copy is a dataset folder of its own (new digests, a derived name), so it can never pass as the original.
            Example: ./securemnist poison --out data/mnist-backdoor && ./securemnist train --dataset data/mnist-backdoor --out models/backdoor
            Example: ./securemnist poison --trigger-pattern blend --trigger-alpha 0.15 --out data/mnist-blend
            Example: ./securemnist poison --mode clean-label-adversarial --surrogate models/baseline --count 300 --out data/mnist-turner
            Example: ./securemnist poison --mode source-specific --sources 3 --covers 100 --out data/mnist-tact
            """)
        { dataset, output, mode, count, target, sources, size, row, column, pattern, intensity, alpha, surrogate, publicKey, hardenEps, covers, coverClasses, seed, preview, json };
        command.SetAction(result =>
        {
            var chosenMode = Modes[result.GetValue(mode)!];
            var coverCount = result.GetValue(covers);
            if (coverCount < -1) throw new ArgumentException($"--covers must be 0 or more (got {coverCount})");
            var options = new PoisonOptions(chosenMode, result.GetValue(count), result.GetValue(target),
                ParseClasses(result.GetValue(sources)), Trigger(result, size, row, column, pattern, intensity, alpha), result.GetValue(seed),
                HardenEpsilon: result.GetValue(hardenEps), CoverCount: chosenMode == PoisonMode.SourceSpecific ? (coverCount == -1 ? result.GetValue(count) : coverCount) : Math.Max(0, coverCount),
                CoverClasses: ParseClasses(result.GetValue(coverClasses)));
            options.Validate();
            if (result.GetValue(surrogate) is not null && chosenMode != PoisonMode.CleanLabelAdversarial)
                throw new ArgumentException("--surrogate is for --mode clean-label-adversarial");
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var path = result.GetValue(output)!;
            using var attackerModel = chosenMode == PoisonMode.CleanLabelAdversarial
                ? SecureMnist.Security.ModelPackage.Load(result.GetValue(surrogate) ?? throw new ArgumentException("--mode clean-label-adversarial needs --surrogate PKG, the attacker's own model"),
                    SecureMnist.Security.TrustedPublicKey.FromFile(result.GetValue(publicKey)!))
                : null;
            var manifest = DataPoisoner.Write(data, options, path, attackerModel?.Network);
            if (result.GetValue(preview) is { } png)
            {
                var poisoned = new DatasetStore(DatasetStore.DefaultRoot).Load(path);
                var shown = manifest.Samples.Take(10).ToArray();
                var rows = new List<SecureMnist.Reporting.GridRow>
                {
                    new("original", shown.Select(s => (Pixels(data.Train, s.Index), false, $"label {s.OriginalLabel}")).ToArray()),
                    new("poisoned", shown.Select(s => (Pixels(poisoned.Train, s.Index), false, $"label {s.PoisonedLabel}")).ToArray()),
                };
                SecureMnist.Reporting.ImageGrid.Save(png, $"{DataPoisoner.Kebab(options.Mode)} poisoning: {manifest.Samples.Count} samples, target {options.TargetClass}", [], rows);
                Ui.Info($"preview written to {png}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { dataset = path, manifest.Mode, manifest.TargetClass, manifest.SourceClasses, trigger = manifest.Trigger?.ToString(), poisoned = manifest.Samples.Count(s => !s.Cover),
                    covers = manifest.Samples.Count(s => s.Cover), manifest.CoverClasses, manifest.HardenEpsilon, manifest.TrainImages });
                return 0;
            }
            var poisonedCount = manifest.Samples.Count(s => !s.Cover);
            Ui.Out.MarkupLineInterpolated($"wrote [bold]{path}[/]: {poisonedCount} of {manifest.TrainImages} training samples ({100.0 * poisonedCount / manifest.TrainImages:F2}%) poisoned, {DataPoisoner.Kebab(manifest.Mode)}, target {manifest.TargetClass}");
            if (manifest.CoverClasses is { } coverList) Ui.Out.MarkupLineInterpolated($"cover samples: {manifest.Samples.Count(s => s.Cover)} triggered images of classes {string.Join(",", coverList)}, true labels kept");
            if (manifest.HardenEpsilon is { } eps) Ui.Out.MarkupLineInterpolated($"target images perturbed by PGD (eps {eps}) against the surrogate before the trigger");
            if (manifest.Trigger is { } t) Ui.Out.MarkupLineInterpolated($"trigger: {t}");
            Ui.Out.MarkupLineInterpolated($"ground truth: {Path.Combine(path, PoisonManifest.FileName)}; train on it with: ./securemnist train --dataset {path} --out {Path.Combine("models", Path.GetFileName(Path.TrimEndingDirectorySeparator(path)).Replace("mnist-", "", StringComparison.Ordinal))}");
            return 0;
        });
        return command;
    }

    private static Command Backdoor()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var poison = PoisonFolder();
        var plot = new Option<string?>("--plot") { Description = "Write a PNG of clean and triggered test images with the model's predictions" };
        var json = CommonOptions.Json();
        var command = new Command("backdoor", """
            Measure a backdoor: clean test accuracy and attack success rate (ASR: triggered test images of other classes
            predicted as the target), with the trigger and target read from the poisoned folder's poison.json.
            Example: ./securemnist backdoor --model models/backdoor --poison data/mnist-backdoor --plot out/backdoor.png
            """)
        { model, publicKey, allowUnsigned, poison, plot, json };
        command.SetAction(result =>
        {
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var (data, manifest, trigger) = LoadPoisoned(result, poison);
            var report = BackdoorEvaluator.Evaluate(verified.Network, data.Test, manifest);
            if (result.GetValue(plot) is { } png)
            {
                BackdoorEvaluator.SaveExamples(verified.Network, data.Test, trigger, manifest.TargetClass, png);
                Ui.Info($"examples written to {png}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { model = verified.Directory, poison = data.Directory, report });
                return 0;
            }
            WriteBackdoor(report, verified.Directory);
            return 0;
        });
        return command;
    }

    private static Command DetectPoison()
    {
        var model = CommonOptions.Model();
        model.Description = "Model package whose penultimate-layer activations spectre, activation-clustering and spectral-signatures read (the k-NN methods read the images and load no model)";
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = new Option<string>("--dataset") { Description = "The training data the model was trained on (name or folder); scored when it holds a poison.json", DefaultValueFactory = _ => "data/mnist-backdoor" };
        var detector = new DetectionFlags();
        var output = new Option<string?>("--out") { Description = "Write the full detection report (every flagged index with its score) as JSON" };
        var top = new Option<int>("--top") { Description = "Flagged samples to list on the console", DefaultValueFactory = _ => 15 };
        var plot = new Option<string?>("--plot") { Description = "Chart each class's deciding figure against its threshold (separation, cluster share or share removed), suspicious classes in red: PNG, or SVG when the file ends in .svg" };
        var json = CommonOptions.Json();
        var command = new Command("detect-poison", """
            Find poisoned training samples without knowing the trigger, from a trained model's penultimate-layer activations
            or from the images themselves. Methods:
              knn-consistency (default): reads the images, not the model: a sample is flagged when at most --max-agreement of
                its --neighbours nearest training images (L2 on 2x2-pooled images, --knn-space) share its label, as a source digit
                relabelled to the target does. Flagged samples then stop voting and the rest vote again (--peel-rounds), so
                poisoned images dense enough to be each other's neighbours cannot vouch for each other. It cannot see clean-label
                poison;
              knn-reference: the same vote, but by the --neighbours (10) nearest images of a trusted reference set (the
                dataset's test images, or --reference) instead of training images, so poison cannot vote for poison however
                dense it is (TaCT, high rates); flagged when none agrees (--max-agreement 0). Needs images the attacker could
                not touch;
              knn-union: both votes: flagged when the training images or the reference images reject the label (knn-consistency's
                rule with --neighbours and --max-agreement, knn-reference's with --reference-neighbours and
                --reference-max-agreement). Each covers the other's blind spot: dense poison vouches for itself among training
                images but not among reference images, and the larger training electorate settles digits the smaller reference
                set leaves ambiguous. It pays with both votes' false alarms;
              spectre: the activations whitened with a robust (trimmed) covariance, as SPECTRE does, and scored along
                their top direction; 2-means on that score, and a small, far, tight cluster is flagged;
              activation-clustering: Chen et al. with ART's settings: PCA to 10 dimensions, 2-means, and a cluster under 35% of
                its class is flagged (--silhouette: only when the silhouette score is at least 0.1 as well);
              spectral-signatures: Tran et al.: centred activations, squared projection on the top singular vector, and the top
                1.5x the expected poison share (--expected-fraction) of every class is removed.
            Prints suspicious indices with scores and, when the dataset holds a poison.json, precision, recall and the share of
            clean target-class samples flagged, scored by the same code for every method.
            Example: ./securemnist detect-poison --dataset data/mnist-backdoor --out out/detection.json --plot out/detection.png
            Example: ./securemnist detect-poison --model models/backdoor --method activation-clustering --silhouette
            Example: ./securemnist detect-poison --dataset data/mnist-backdoor --method knn-union --plot out/detection.png
            Example: ./securemnist detect-poison --model models/backdoor --method knn-reference --reference mnist
            """)
        { model, publicKey, allowUnsigned, dataset, output, top, plot, json };
        detector.AddTo(command);
        command.SetAction(result =>
        {
            var options = detector.Read(result);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var reference = detector.Reference(result, data);
            // The k-NN methods read the images alone: no model is loaded for them.
            using var verified = PoisonDetector.ReadsPixels(options.Method) ? null : PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var report = Detect(verified, data, options, reference);
            if (result.GetValue(output) is { } path)
            {
                JsonFormat.Save(path, report);
                Ui.Info($"detection report written to {path}");
            }
            if (result.GetValue(plot) is { } png)
            {
                PoisonDetector.Plot(report, png);
                Ui.Info($"detection chart written to {png}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(report);
                return 0;
            }
            var deciding = report.Options.Method switch { PoisonDetectionMethod.Spectre => "separation", PoisonDetectionMethod.ActivationClustering => "silhouette", _ => "-" };
            var classes = new Table().Title($"{PoisonDetector.MethodName(report.Options.Method)} on {data.Name} ({report.Samples} training samples, {report.Seconds:F1} s)")
                .AddColumns("class", "samples", report.Options.Method switch
                {
                    PoisonDetectionMethod.SpectralSignatures => "removed",
                    PoisonDetectionMethod.KnnConsistency or PoisonDetectionMethod.KnnReference or PoisonDetectionMethod.KnnUnion => "flagged share",
                    _ => "small cluster",
                }, deciding, "flagged");
            foreach (var c in report.Classes)
                classes.AddRow($"{c.Label}", $"{c.Samples}", Ui.Percent(c.SmallClusterFraction), deciding == "-" ? "-" : $"{c.Separation:F2}", c.Suspicious ? $"[red]{c.Flagged}[/]" : "0");
            Ui.Out.Write(classes);
            if (report.Flagged.Count > 0)
            {
                var flagged = new Table().Title($"most suspicious of {report.Flagged.Count} flagged").AddColumns("index", "label", "score");
                foreach (var f in report.Flagged.Take(result.GetValue(top))) flagged.AddRow($"{f.Index}", $"{f.Label}", $"{f.Score:F4}");
                Ui.Out.Write(flagged);
            }
            else Ui.Out.MarkupLine("no class looks poisoned");
            if (report.Score is { } s) WriteScore(s);
            return 0;
        });
        return command;
    }

    private static Command Sanitize()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = new Option<string>("--dataset") { Description = "The (possibly poisoned) training data the model was trained on", DefaultValueFactory = _ => "data/mnist-backdoor" };
        var detector = new DetectionFlags();
        var detection = new Option<string?>("--detection") { Description = "Use this detect-poison --out report instead of detecting again" };
        var sanitizedData = new Option<string?>("--sanitized-data") { Description = "Folder for the sanitized copy (default: DATASET-sanitized)" };
        var output = new Option<string>("--out") { Description = "Model package folder for the retrained model", DefaultValueFactory = _ => "models/sanitized" };
        var epochs = new Option<int?>("--epochs") { Description = "Override the epochs of the poisoned model's recorded recipe" };
        var resume = new Option<bool>("--resume") { Description = "Continue an interrupted retraining" };
        var key = new Option<string>("--key") { Description = "Ed25519 private key that signs the retrained package", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var json = CommonOptions.Json();
        var command = new Command("sanitize", """
            Remove the samples poison detection flags, retrain with the poisoned model's own recipe (from its signed run record),
            and compare clean accuracy and backdoor attack success before and after.
            Example: ./securemnist sanitize --model models/backdoor --dataset data/mnist-backdoor --out models/sanitized
            """)
        { model, publicKey, allowUnsigned, dataset, detection, sanitizedData, output, epochs, resume, key, json };
        detector.AddTo(command);
        command.SetAction(result =>
        {
            var options = detector.Read(result);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var reference = result.GetValue(detection) is null ? detector.Reference(result, data) : null;
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var report = result.GetValue(detection) is { } detectionPath
                ? JsonFormat.Load<PoisonDetectionReport>(detectionPath)
                : Detect(verified, data, options, reference);
            if (report.Samples != data.Train.Count)
                throw new ArgumentException($"the detection report covers {report.Samples} samples but {data.Directory} has {data.Train.Count}; it belongs to other data");
            Ui.Info($"removing {report.Flagged.Count} flagged samples and retraining");
            var packageDirectory = result.GetValue(output)!;
            var sanitizedDirectory = result.GetValue(sanitizedData) ?? Path.TrimEndingDirectorySeparator(data.Directory) + "-sanitized";
            var runs = Path.Combine("runs", Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(packageDirectory))));
            var keyPath = result.GetValue(key)!;
            var (signingKey, _) = TrainingPipeline.OpenOrCreateKey(keyPath, createIfMissing: keyPath == TrainCommand.DefaultKey);
            using var __ = signingKey;
            var outcome = Ui.WithTrainingProgress("retraining on sanitized data", progress =>
                SanitizeExperiment.Run(verified, data, report, sanitizedDirectory, packageDirectory, runs, signingKey, result.GetValue(resume),
                    result.GetValue(epochs), progress, CommandRunner.Cancellation.Token));
            JsonFormat.Save(Path.Combine(runs, "sanitize.json"), outcome);
            if (result.GetValue(json))
            {
                Ui.WriteJson(outcome);
                return 0;
            }
            if (outcome.Detection is { } s) WriteScore(s);
            var table = new Table().Title("sanitize and retrain").AddColumns("", "model", "clean accuracy", "attack success rate");
            if (outcome.Before is { } before) table.AddRow("before", outcome.PoisonedModel, Ui.Percent(before.CleanAccuracy), Ui.Percent(before.AttackSuccessRate));
            if (outcome.After is { } after) table.AddRow("after", outcome.SanitizedModel, Ui.Percent(after.CleanAccuracy), Ui.Percent(after.AttackSuccessRate));
            Ui.Out.Write(table);
            Ui.Out.MarkupLineInterpolated($"removed {outcome.Removed} samples; sanitized data {outcome.SanitizedDataset}; signed package [bold]{outcome.SanitizedModel}[/]; retraining took {outcome.TrainingSeconds:F0} s; report {Path.Combine(runs, "sanitize.json")}");
            return 0;
        });
        return command;
    }

    private static Command Strip()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var poison = PoisonFolder();
        var overlays = new Option<int>("--overlays") { Description = "Clean images superimposed on each input", DefaultValueFactory = _ => new StripOptions().Overlays };
        var fpr = new Option<double>("--fpr") { Description = "False-positive rate the threshold is calibrated for, on clean test images", DefaultValueFactory = _ => new StripOptions().FalsePositiveRate };
        var confidence = new Option<double>("--confidence") { Description = "Probability that the threshold's true FPR stays at or below --fpr (a one-sided binomial bound on the calibration quantile)", DefaultValueFactory = _ => new StripOptions().Confidence };
        var blend = new Option<string>("--blend") { Description = "How overlays are superimposed: add (add and clip, as Gao et al.) or alpha (the weighted average with --blend-alpha)", DefaultValueFactory = _ => "add" };
        blend.AcceptOnlyFromAmong("add", "alpha");
        var blendAlpha = new Option<double>("--blend-alpha") { Description = "The overlay's weight in an alpha blend, (0, 1)", DefaultValueFactory = _ => new StripOptions().BlendAlpha };
        var plot = new Option<string?>("--plot") { Description = "Write a PNG histogram of clean and triggered entropies with the threshold" };
        var json = CommonOptions.Json();
        var command = new Command("strip", """
            Trigger detection at inference time (STRIP): superimpose clean digits on each input and flag inputs whose
            predictions stay confident (low entropy). The threshold comes from 2,000 clean test images drawn at random
            (another 1,000 are the overlays), set so the FPR stays at or below --fpr with --confidence probability;
            TPR is measured on the remaining test images of other classes with the trigger, FPR on them without.
            A saturated patch survives add-and-clip untouched; --blend alpha dims it like the rest of the input.
            Example: ./securemnist strip --model models/backdoor --poison data/mnist-backdoor --plot out/strip.png
            Example: ./securemnist strip --model models/backdoor --poison data/mnist-backdoor --blend alpha
            """)
        { model, publicKey, allowUnsigned, poison, overlays, fpr, confidence, blend, blendAlpha, plot, json };
        command.SetAction(result =>
        {
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var (data, manifest, trigger) = LoadPoisoned(result, poison);
            var stripOptions = new StripOptions(result.GetValue(overlays), result.GetValue(fpr), Confidence: result.GetValue(confidence),
                Blend: result.GetValue(blend) == "alpha" ? StripBlend.Alpha : StripBlend.Add, BlendAlpha: result.GetValue(blendAlpha));
            stripOptions.Validate();
            var report = StripEvaluation.Run(verified.Network, data.Test, trigger, manifest.TargetClass, stripOptions, attacked: manifest.AttackedClasses);
            if (result.GetValue(plot) is { } png)
            {
                StripEvaluation.Plot(report, png);
                Ui.Info($"histogram written to {png}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(report with { CleanEntropies = [], TriggeredEntropies = [] });
                return 0;
            }
            Ui.Out.MarkupLineInterpolated($"STRIP on {verified.Directory}: threshold {report.Threshold:F4} nats ({report.Options.Overlays} overlays, {(report.Options.Blend == StripBlend.Add ? "add and clip" : $"alpha blend {report.Options.BlendAlpha:0.##}")}, calibrated for FPR <= {Ui.Percent(report.Options.FalsePositiveRate)} with {Ui.Percent(report.Options.Confidence)} confidence on {report.CalibrationImages} clean images)");
            Ui.Out.MarkupLineInterpolated($"triggered inputs flagged (TPR): [bold]{Ui.Percent(report.TruePositiveRate)}[/] ({report.TriggeredFlagged}/{report.TriggeredImages})");
            Ui.Out.MarkupLineInterpolated($"clean inputs flagged (FPR): [bold]{Ui.Percent(report.FalsePositiveRate)}[/] ({report.CleanFlagged}/{report.CleanImages}); {report.Seconds:F1} s");
            return 0;
        });
        return command;
    }

    /// <summary>Runs the detector on the training set (on the model's activations, or on the images for a k-NN method, which needs no model).</summary>
    private static PoisonDetectionReport Detect(SecureMnist.Security.LoadedModel? verified, Dataset data, PoisonDetectionOptions options, LabeledImages? reference)
    {
        var report = PoisonDetector.ReadsPixels(options.Method)
            ? PoisonDetector.Detect(FeatureActivations.Pixels(data.Train), data.Train.Labels, options, CommandRunner.Cancellation.Token, reference: reference)
            : PoisonDetector.Detect(verified!.Network, data.Train, options, cancellationToken: CommandRunner.Cancellation.Token, reference: reference);
        return PoisonManifests.TryLoad(data.Directory) is { } poison ? report.ScoredAgainst(poison, data.Train.Labels) : report;
    }

    /// <summary>The detector's flags, shared by detect-poison and sanitize.</summary>
    private sealed class DetectionFlags
    {
        private static readonly PoisonDetectionOptions Defaults = new();
        private readonly Option<string> method = new("--method") { Description = "knn-consistency (input-space neighbours' labels), knn-reference (the labels of trusted reference images nearby), knn-union (both k-NN votes), spectre (robust whitening), activation-clustering (Chen et al., ART's settings) or spectral-signatures (Tran et al.)", DefaultValueFactory = _ => PoisonDetector.MethodName(Defaults.Method) };
        private readonly Option<string?> reference = new("--reference") { Description = "knn-union and knn-reference: trusted clean images whose labels vote, images the attacker could not have touched: a dataset name or folder, whose test images are used (default: the --dataset's own test images)" };
        private readonly Option<double> trim = new("--trim") { Description = "spectre: share of each class left out of the whitening covariance as outliers (robust estimate), [0, 0.5)", DefaultValueFactory = _ => Defaults.Trim };
        private readonly Option<double> maxFraction = new("--max-cluster-fraction") { Description = "spectre: largest share of a class the smaller cluster may hold and still be flagged, (0, 0.5)", DefaultValueFactory = _ => Defaults.MaxClusterFraction };
        private readonly Option<double> minSeparation = new("--min-separation") { Description = "spectre: smallest distance between the cluster centres, in units of their summed standard deviations, that counts as a separate population", DefaultValueFactory = _ => Defaults.MinSeparation };
        private readonly Option<double> expectedFraction = new("--expected-fraction") { Description = "spectral-signatures: assumed poisoned share per class, (0, 0.5); the top 1.5x that share is removed", DefaultValueFactory = _ => Defaults.ExpectedFraction };
        private readonly Option<int> dimensions = new("--dimensions") { Description = "activation-clustering: PCA dimensions before 2-means (ART: 10)", DefaultValueFactory = _ => Defaults.Dimensions };
        private readonly Option<double> sizeThreshold = new("--size-threshold") { Description = "activation-clustering: a cluster with less than this share of its class is poison, (0, 0.5] (ART: 0.35)", DefaultValueFactory = _ => Defaults.SizeThreshold };
        private readonly Option<int?> neighbours = new("--neighbours") { Description = $"k-NN methods: nearest images that vote with their labels, 1 to 1,000 (default: {Defaults.Neighbours} training images; knn-reference: {Defaults.ReferenceNeighbours} reference images; knn-union: the training vote)" };
        private readonly Option<double?> maxAgreement = new("--max-agreement") { Description = $"k-NN methods: a sample is flagged when at most this share of its neighbours carry its label, [0, 1) (default: {Defaults.MaxAgreement}; knn-reference: {Defaults.ReferenceMaxAgreement}, none agrees; knn-union: the training vote)" };
        private readonly Option<int?> referenceNeighbours = new("--reference-neighbours") { Description = $"knn-union: nearest reference images that vote, 1 to 1,000 (default: {Defaults.ReferenceNeighbours})" };
        private readonly Option<double?> referenceMaxAgreement = new("--reference-max-agreement") { Description = $"knn-union: the reference vote flags a sample when at most this share of its reference neighbours carry its label, [0, 1) (default: {Defaults.ReferenceMaxAgreement}, none agrees)" };
        private readonly Option<KnnSpace> knnSpace = new("--knn-space") { Description = "knn-consistency and knn-reference: compare images as pooled (2x2 averages: the digit's shape, less of a trigger's fine pattern) or pixels", DefaultValueFactory = _ => Defaults.KnnSpace };
        private readonly Option<int> peelRounds = new("--peel-rounds") { Description = "knn-consistency: rounds in which flagged samples stop voting and the rest vote again, so dense poison cannot vouch for itself; 0 votes once, up to 100", DefaultValueFactory = _ => Defaults.PeelRounds };
        private readonly Option<bool> silhouette = new("--silhouette") { Description = $"activation-clustering: flag only when the class's silhouette score is also at least {Defaults.SilhouetteThreshold} (ART's silhouette-scores analysis)" };

        public DetectionFlags() => method.AcceptOnlyFromAmong([.. Methods.Keys]);

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { method, reference, trim, maxFraction, minSeparation, expectedFraction, dimensions, sizeThreshold, silhouette, neighbours, maxAgreement, referenceNeighbours, referenceMaxAgreement, knnSpace, peelRounds }) command.Options.Add(option);
        }

        public PoisonDetectionOptions Read(ParseResult result)
        {
            var chosen = Methods[result.GetValue(method)!];
            var againstReference = chosen == PoisonDetectionMethod.KnnReference;
            if (chosen != PoisonDetectionMethod.KnnUnion && (result.GetValue(referenceNeighbours) is not null || result.GetValue(referenceMaxAgreement) is not null))
                throw new ArgumentException($"--reference-neighbours and --reference-max-agreement set knn-union's reference vote; with --method {result.GetValue(method)} use --neighbours and --max-agreement");
            if (!PoisonDetector.NeedsReference(chosen) && result.GetValue(reference) is not null)
                throw new ArgumentException($"--reference is used by --method knn-union and knn-reference only, not {result.GetValue(method)}");
            return new(chosen, result.GetValue(trim), result.GetValue(maxFraction),
                result.GetValue(minSeparation), result.GetValue(expectedFraction), Dimensions: result.GetValue(dimensions), SizeThreshold: result.GetValue(sizeThreshold),
                Analysis: result.GetValue(silhouette) ? ClusterAnalysis.Silhouette : ClusterAnalysis.RelativeSize,
                Neighbours: againstReference ? Defaults.Neighbours : result.GetValue(neighbours) ?? Defaults.Neighbours,
                MaxAgreement: againstReference ? Defaults.MaxAgreement : result.GetValue(maxAgreement) ?? Defaults.MaxAgreement,
                KnnSpace: result.GetValue(knnSpace), PeelRounds: result.GetValue(peelRounds),
                ReferenceNeighbours: againstReference ? result.GetValue(neighbours) ?? Defaults.ReferenceNeighbours : result.GetValue(referenceNeighbours) ?? Defaults.ReferenceNeighbours,
                ReferenceMaxAgreement: againstReference ? result.GetValue(maxAgreement) ?? Defaults.ReferenceMaxAgreement : result.GetValue(referenceMaxAgreement) ?? Defaults.ReferenceMaxAgreement);
        }

        /// <summary>
        /// The trusted reference images knn-union and knn-reference vote with: the test split of --reference, or else of the dataset under
        /// inspection (images the attacker, who contributed training data, did not touch); none for the other methods.
        /// </summary>
        public LabeledImages? Reference(ParseResult result, Dataset data)
        {
            var name = result.GetValue(reference);
            var chosen = Methods[result.GetValue(method)!];
            if (!PoisonDetector.NeedsReference(chosen)) return null; // Read refuses --reference here
            if (name is null)
            {
                Ui.Info($"{PoisonDetector.MethodName(chosen)}: the trusted reference is the {data.Test.Count} test images of {data.Directory} (--reference names another set)");
                return data.Test;
            }
            return new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(name).Test;
        }
    }

    private static (Option<int>, Option<int?>, Option<int?>, Option<string>, Option<int>) TriggerOptions()
    {
        var size = new Option<int>("--trigger-size") { Description = "Side of the square trigger patch in pixels", DefaultValueFactory = _ => BackdoorTrigger.Default.Size };
        var row = new Option<int?>("--trigger-row") { Description = "Top row of the patch (default: bottom edge)" };
        var column = new Option<int?>("--trigger-col") { Description = "Left column of the patch (default: right edge)" };
        var pattern = new Option<string>("--trigger-pattern") { Description = "square (solid), checkerboard, or blend (a random full-image pattern mixed in with --trigger-alpha; size and position ignored)", DefaultValueFactory = _ => "square" };
        pattern.AcceptOnlyFromAmong("square", "checkerboard", "blend");
        var intensity = new Option<int>("--trigger-intensity") { Description = "Pixel value of the patch, 1-255", DefaultValueFactory = _ => BackdoorTrigger.Default.Intensity };
        return (size, row, column, pattern, intensity);
    }

    private static BackdoorTrigger Trigger(ParseResult result, Option<int> size, Option<int?> row, Option<int?> column, Option<string> pattern, Option<int> intensity, Option<double> alpha)
    {
        var value = result.GetValue(intensity);
        if (value is < 1 or > 255) throw new ArgumentException($"--trigger-intensity must be 1..255, got {value}");
        var weight = result.GetValue(alpha);
        if (weight is <= 0 or > 1) throw new ArgumentException($"--trigger-alpha must be more than 0 and at most 1, got {weight}");
        var chosen = result.GetValue(pattern) switch { "checkerboard" => TriggerPattern.Checkerboard, "blend" => TriggerPattern.Blend, _ => TriggerPattern.Square };
        return new BackdoorTrigger(result.GetValue(size), result.GetValue(row), result.GetValue(column), chosen, (byte)value, Alpha: weight);
    }

    private static Option<string> PoisonFolder() => new("--poison")
    {
        Description = "Poisoned dataset folder written by `poison` (its poison.json gives trigger and target; its test split is used)",
        DefaultValueFactory = _ => "data/mnist-backdoor",
    };

    private static (Dataset Data, PoisonManifest Manifest, BackdoorTrigger Trigger) LoadPoisoned(ParseResult result, Option<string> poison)
    {
        var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(poison)!);
        var manifest = PoisonManifests.TryLoad(data.Directory)
            ?? throw new ArgumentException($"{data.Directory} has no {PoisonManifest.FileName}; give a folder written by ./securemnist poison");
        var trigger = manifest.Trigger ?? throw new ArgumentException($"{data.Directory} holds a {DataPoisoner.Kebab(manifest.Mode)} poisoning, which has no trigger to test");
        return (data, manifest, trigger);
    }

    private static int[]? ParseClasses(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(part =>
            int.TryParse(part, System.Globalization.CultureInfo.InvariantCulture, out var c) ? c : throw new ArgumentException($"--sources: '{part}' is not a class number")).ToArray();
    }

    private static float[] Pixels(LabeledImages images, int index) => images.Image(index).ToArray().Select(b => b / 255f).ToArray();

    private static void WriteBackdoor(BackdoorReport report, string model)
    {
        Ui.Out.MarkupLineInterpolated($"[bold]{model}[/]: clean accuracy [bold]{Ui.Percent(report.CleanAccuracy)}[/] on {report.CleanImages} test images");
        Ui.Out.MarkupLineInterpolated($"backdoor ({report.Trigger} -> {report.TargetClass}): attack success rate [bold]{Ui.Percent(report.AttackSuccessRate)}[/] on {report.TriggeredImages} triggered test images of other classes");
        var table = new Table().AddColumns("source class", "images", "predicted as target", "ASR");
        foreach (var s in report.PerSourceClass) table.AddRow($"{s.SourceClass}", $"{s.Images}", $"{s.PredictedAsTarget}", Ui.Percent(s.AttackSuccessRate));
        Ui.Out.Write(table);
    }

    private static void WriteScore(PoisonDetectionScore s)
    {
        Ui.Out.MarkupLineInterpolated($"against poison.json: recall [bold]{Ui.Percent(s.Recall)}[/] ({s.TruePositives}/{s.Poisoned} poisoned found), precision {Ui.Percent(s.Precision)} ({s.Flagged} flagged)");
        Ui.Out.MarkupLineInterpolated($"clean samples of target class {s.TargetClass} flagged: [bold]{Ui.Percent(s.CleanFlaggedRateInTargetClass)}[/] ({s.CleanFlaggedInTargetClass}/{s.CleanInTargetClass}); clean flagged overall {s.CleanFlaggedOverall} ({Ui.Percent(s.CleanFlaggedRateOverall)})");
    }
}
