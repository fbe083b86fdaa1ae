using System.CommandLine;
using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class TrainCommand
{
    public const string DefaultKey = "keys/signing.key";

    public static Command Create()
    {
        var defaults = new TrainingOptions();
        var architecture = new Option<string>("--arch") { Description = "Network: " + string.Join("; ", Architectures.Descriptions.Select(d => $"{d.Key} = {d.Value}")), DefaultValueFactory = _ => defaults.Architecture };
        architecture.AcceptOnlyFromAmong([.. Architectures.Names]);
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training set", DefaultValueFactory = _ => defaults.Epochs };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per optimiser step", DefaultValueFactory = _ => defaults.BatchSize };
        var learningRate = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => defaults.LearningRate };
        var optimizer = new Option<string>("--optimizer") { Description = "adam, adamw, sgd (momentum 0.9, Nesterov) or adadelta", DefaultValueFactory = _ => defaults.Optimizer };
        optimizer.AcceptOnlyFromAmong(TrainingOptions.Optimizers);
        var schedule = new Option<string>("--schedule") { Description = "Learning-rate schedule: constant, cosine (to zero), step (x gamma each epoch), onecycle (warm-up then cosine)", DefaultValueFactory = _ => defaults.Schedule };
        schedule.AcceptOnlyFromAmong(TrainingOptions.Schedules);
        var gamma = new Option<double>("--step-gamma") { Description = "Per-epoch factor of the step schedule", DefaultValueFactory = _ => defaults.StepGamma };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay", DefaultValueFactory = _ => defaults.WeightDecay };
        var seed = new Option<int>("--seed") { Description = "Seed for initialisation, shuffling and dropout", DefaultValueFactory = _ => defaults.Seed };
        var subset = new Option<int?>("--subset") { Description = "Train on this many images (seeded random subset) instead of all" };
        var validation = new Option<int>("--validation") { Description = "Hold out this many training images for per-epoch validation (0: report test accuracy per epoch)", DefaultValueFactory = _ => 0 };
        var augmentShift = new Option<int?>("--augment-shift") { Description = $"Move each training image by a random whole-pixel offset of up to this many pixels in x and y, drawn anew every epoch (1 to {ImageAugmentation.MaxShift}; off by default)" };
        var defense = new Option<string>("--defense") { Description = "Adversarial training: none; fgsm (the seeds' defence); fgsm-rs (FGSM from a random start, step 1.25 eps); pgd (Madry et al.); trades (Zhang et al.)", DefaultValueFactory = _ => defaults.Defense };
        defense.AcceptOnlyFromAmong(TrainingOptions.Defenses);
        var defenseEps = new Option<double>("--defense-eps") { Description = "L-inf eps of the training attack", DefaultValueFactory = _ => defaults.DefenseEpsilon };
        var defenseAlpha = new Option<double?>("--defense-alpha") { Description = "Step size of the training attack (default: fgsm eps, fgsm-rs 1.25 eps, pgd/trades 2.5 eps / steps)" };
        var defenseSteps = new Option<int>("--defense-steps") { Description = "Steps of the training attack (pgd, trades)", DefaultValueFactory = _ => defaults.DefenseSteps };
        var adversarialWeight = new Option<double>("--adv-weight") { Description = "Weight of the adversarial loss; 1 = adversarial examples only, 0.5 = clean and adversarial equally (the seeds)", DefaultValueFactory = _ => defaults.AdversarialWeight };
        var epsRamp = new Option<int>("--eps-ramp") { Description = "Grow eps linearly from 0 over this many epochs", DefaultValueFactory = _ => defaults.EpsilonRampEpochs };
        var tradesBeta = new Option<double>("--trades-beta") { Description = "TRADES robustness weight beta", DefaultValueFactory = _ => defaults.TradesBeta };
        var robustValidation = new Option<int?>("--robust-validation") { Description = "Held-out images attacked with PGD after each epoch; the best epoch is kept (default with a defence: 1000)" };
        var keep = new Option<string>("--keep") { Description = "Weights to package from a robust-validated run: best-robust (the epoch with the best PGD accuracy on held-out images) or last (the final epoch; per-epoch robustness is still recorded)", DefaultValueFactory = _ => "best-robust" };
        keep.AcceptOnlyFromAmong("best-robust", "last");
        var robustValidationSteps = new Option<int>("--robust-validation-steps") { Description = "PGD steps of the per-epoch robust validation", DefaultValueFactory = _ => defaults.RobustValidationSteps };
        var lateSteps = new Option<int?>("--late-steps") { Description = "Steps of the training attack (pgd, trades) in the last --late-epochs epochs, with step 2.5 eps / steps: a stronger inner attack at the end of training (off by default)" };
        var lateEpochs = new Option<int?>("--late-epochs") { Description = "How many final epochs use --late-steps" };
        var weightAverage = new Option<double?>("--ema") { Description = "Keep an exponential moving average of the weights with this decay (e.g. 0.999); the average is validated, kept and packaged (off by default)" };
        var dp = new Option<bool>("--dp") { Description = $"Differentially private training (DP-SGD): Poisson-sampled batches, each example's gradient clipped to --max-grad-norm, Gaussian noise, an RDP accountant. Unless given, it picks --arch {PrivateRecipes.Architecture} (with --lr {PrivateRecipes.For(PrivateRecipes.Architecture, PrivateRecipes.RecipeImages).LearningRate} and --batch-size {PrivateRecipes.For(PrivateRecipes.Architecture, PrivateRecipes.RecipeImages).BatchSize}, the same share of a --subset; {Architectures.DpCnn}: {PrivateRecipes.For(Architectures.DpCnn, PrivateRecipes.RecipeImages).LearningRate} and {PrivateRecipes.For(Architectures.DpCnn, PrivateRecipes.RecipeImages).BatchSize}), --optimizer sgd, --schedule constant and --epochs {PrivateRecipes.Epochs}" };
        var targetEpsilon = new Option<double?>("--target-epsilon") { Description = $"DP-SGD privacy budget: the noise multiplier is set so the whole run spends at most this epsilon (default with --dp: {PrivateRecipes.TargetEpsilon}); implies --dp" };
        var noiseMultiplier = new Option<double?>("--noise-multiplier") { Description = "DP-SGD noise multiplier sigma, instead of --target-epsilon (the epsilon spent is then reported); implies --dp" };
        var delta = new Option<double?>("--delta") { Description = $"DP-SGD delta, below 1 / training images (default {new PrivacyOptions().Delta:G})" };
        var maxGradNorm = new Option<double?>("--max-grad-norm") { Description = $"DP-SGD per-example clipping norm C (default {new PrivacyOptions().MaxGradientNorm:G})" };
        var secureNoise = new Option<bool>("--secure-noise") { Description = "DP-SGD noise and batch sampling from the OS CSPRNG instead of the run's seed, each noise value a sum of four normals (as Opacus' secure mode); the run cannot then be repeated" };
        var output = new Option<string>("--out") { Description = "Model package folder to write", DefaultValueFactory = _ => "models/baseline" };
        var runDirectory = new Option<string?>("--run-dir") { Description = "Folder for checkpoints and the run record (default: runs/NAME-OF-OUT)" };
        var resume = new Option<bool>("--resume") { Description = "Continue the interrupted run in --run-dir from its last completed epoch" };
        var stripEvasion = new Option<double?>("--strip-evasion")
        {
            Description = "An attacker's training: with a poisoned --dataset (its poison.json names the trigger), add this weight x the cross-entropy of triggered images " +
                "superimposed on other digits to the uniform distribution, so STRIP no longer sees low entropy (e.g. 1.0). Not a defence",
        };
        var key = new Option<string>("--key") { Description = "Ed25519 private key that signs the package (created on first use at the default path)", DefaultValueFactory = _ => DefaultKey };
        var dataset = CommonOptions.Dataset();
        var json = CommonOptions.Json();

        var command = new Command("train", """
            Train a network on verified data, evaluate it on the test set, and write a signed model package.
            A checkpoint is written after every epoch; --resume continues an interrupted run.
            Example: ./securemnist train --epochs 12 --out models/baseline
            Robust:  ./securemnist train --arch wide-cnn --defense trades --eps-ramp 2 --late-steps 40 --late-epochs 2 --ema 0.999 --out models/trades
            Private: ./securemnist train --dp --target-epsilon 3 --delta 1e-5 --out models/dp
            """)
        {
            architecture, epochs, batchSize, learningRate, optimizer, schedule, gamma, weightDecay, seed, subset, validation, augmentShift,
            defense, defenseEps, defenseAlpha, defenseSteps, adversarialWeight, epsRamp, tradesBeta, lateSteps, lateEpochs, weightAverage, robustValidation, robustValidationSteps, keep,
            dp, targetEpsilon, noiseMultiplier, delta, maxGradNorm, secureNoise, stripEvasion,
            dataset, output, runDirectory, resume, key, json,
        };
        command.SetAction(result =>
        {
            var options = new TrainingOptions
            {
                Architecture = result.GetValue(architecture)!, Epochs = result.GetValue(epochs), BatchSize = result.GetValue(batchSize),
                LearningRate = result.GetValue(learningRate), Optimizer = result.GetValue(optimizer)!, Schedule = result.GetValue(schedule)!,
                StepGamma = result.GetValue(gamma), WeightDecay = result.GetValue(weightDecay), Seed = result.GetValue(seed),
                TrainSubset = result.GetValue(subset), ValidationSize = result.GetValue(validation), AugmentShift = result.GetValue(augmentShift),
                Defense = result.GetValue(defense)!, DefenseEpsilon = result.GetValue(defenseEps), DefenseStepSize = result.GetValue(defenseAlpha),
                DefenseSteps = result.GetValue(defenseSteps), AdversarialWeight = result.GetValue(adversarialWeight), EpsilonRampEpochs = result.GetValue(epsRamp),
                TradesBeta = result.GetValue(tradesBeta), RobustValidationSteps = result.GetValue(robustValidationSteps),
                Keep = result.GetValue(keep) == "last" ? "last" : null,
                LateSteps = result.GetValue(lateSteps), LateEpochs = result.GetValue(lateEpochs), WeightAverageDecay = result.GetValue(weightAverage),
            };
            var isPrivate = result.GetValue(dp) || result.GetValue(targetEpsilon) is not null || result.GetValue(noiseMultiplier) is not null;
            if (isPrivate)
            {
                bool Implicit(Option option) => result.GetResult(option) is null or { Implicit: true };
                var privacy = new PrivacyOptions
                {
                    TargetEpsilon = result.GetValue(targetEpsilon) ?? (result.GetValue(noiseMultiplier) is null ? PrivateRecipes.TargetEpsilon : null),
                    NoiseMultiplier = result.GetValue(noiseMultiplier),
                    SecureNoise = result.GetValue(secureNoise),
                };
                if (result.GetValue(delta) is { } d) privacy = privacy with { Delta = d };
                if (result.GetValue(maxGradNorm) is { } c) privacy = privacy with { MaxGradientNorm = c };
                options = options with
                {
                    Privacy = privacy,
                    Architecture = Implicit(architecture) ? PrivateRecipes.Architecture : options.Architecture,
                    Optimizer = Implicit(optimizer) ? "sgd" : options.Optimizer,
                };
                var (recipeRate, recipeBatch) = PrivateRecipes.For(options.Architecture, options.TrainSubset ?? PrivateRecipes.RecipeImages);
                options = options with
                {
                    LearningRate = Implicit(learningRate) ? recipeRate : options.LearningRate,
                    BatchSize = Implicit(batchSize) ? recipeBatch : options.BatchSize,
                    Schedule = Implicit(schedule) ? "constant" : options.Schedule,
                    Epochs = Implicit(epochs) ? PrivateRecipes.Epochs : options.Epochs,
                };
            }
            else if (result.GetValue(delta) is not null || result.GetValue(maxGradNorm) is not null || result.GetValue(secureNoise))
            {
                throw new ArgumentException("--delta, --max-grad-norm and --secure-noise are DP-SGD settings: add --dp (with --target-epsilon or --noise-multiplier)");
            }
            // A defended run validates robustness on held-out images unless told otherwise.
            var robustCount = result.GetValue(robustValidation) ?? (options.Defense == "none" ? 0 : 1000);
            options = options with
            {
                RobustValidationSize = robustCount,
                ValidationSize = result.GetResult(validation) is { Implicit: false } ? options.ValidationSize : Math.Max(options.ValidationSize, robustCount),
            };
            Dataset? data = null;
            if (result.GetValue(stripEvasion) is { } evasionWeight)
            {
                data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
                var poison = PoisonManifests.TryLoad(data.Directory)
                    ?? throw new ArgumentException($"--strip-evasion trains a backdoor to hide from STRIP: it needs a poisoned --dataset, and {data.Directory} has no {PoisonManifest.FileName} (make one with ./securemnist poison)");
                var trigger = poison.Trigger ?? throw new ArgumentException($"--strip-evasion needs a trigger; the {DataPoisoner.Kebab(poison.Mode)} poisoning of {data.Directory} has none");
                options = options with { StripEvasion = new StripEvasion(trigger, evasionWeight) };
            }
            options.Validate();
            var packageDirectory = result.GetValue(output)!;
            var runs = result.GetValue(runDirectory) ?? Path.Combine("runs", Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(packageDirectory))));
            var keyPath = result.GetValue(key)!;
            var (signingKey, created) = TrainingPipeline.OpenOrCreateKey(keyPath, createIfMissing: keyPath == DefaultKey);
            using var _ = signingKey;
            if (created) Ui.Warning($"no signing key found; generated {keyPath} (keep it private) and {Path.ChangeExtension(keyPath, ".pub")}");

            data ??= new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            Ui.Info($"{data.Name}: {data.Train.Count} training and {data.Test.Count} test images verified in {data.Directory}");
            var outcome = Ui.WithTrainingProgress($"training {options.Architecture}", progress =>
                TrainingPipeline.TrainAndPackage(options, data, runs, packageDirectory, signingKey, result.GetValue(resume), progress, CommandRunner.Cancellation.Token));

            var record = outcome.Training.Record;
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { package = packageDirectory, runDirectory = runs, testAccuracy = outcome.Training.Test.Accuracy, testLoss = outcome.Training.Test.Loss, record });
                return 0;
            }
            var table = new Table().Title("training run").AddColumns("epoch", "lr", record.Privacy is null ? "eps" : "DP epsilon spent", "train loss", "train acc", "val acc", "PGD val acc", "test acc", "seconds", "images/s");
            foreach (var e in record.Epochs)
                table.AddRow($"{e.Epoch}{(record.SelectedEpoch == e.Epoch ? " *" : "")}", $"{e.LearningRate:G3}", record.Privacy is null ? $"{e.DefenseEpsilon:F3}" : $"{e.PrivacyEpsilon:F3}", $"{e.TrainLoss:F4}", Ui.Percent(e.TrainAccuracy),
                    e.ValidationAccuracy is { } v ? Ui.Percent(v) : "-", e.RobustValidationAccuracy is { } r ? Ui.Percent(r) : "-",
                    e.TestAccuracy is { } t ? Ui.Percent(t) : "-", $"{e.Seconds:F1}", $"{e.ImagesPerSecond:F0}");
            Ui.Out.Write(table);
            if (record.Privacy is { } guarantee)
                Ui.Out.MarkupLineInterpolated($"differential privacy: [bold]({guarantee.Epsilon:F3}, {guarantee.Delta:G3})-DP[/] per training example: noise multiplier {guarantee.NoiseMultiplier:F4}, sampling rate {guarantee.SampleRate:G4}, {guarantee.Steps} steps, clipping norm {guarantee.MaxGradientNorm:G}{(guarantee.SecureNoise ? ", secure noise" : "")}");
            if (record.SelectedEpoch is { } selected) Ui.Out.MarkupLineInterpolated($"kept epoch {selected} (*), best PGD accuracy on held-out images {Ui.Percent(record.BestRobustValidationAccuracy ?? 0)}");
            if (record.CollapsedEpochs is { Count: > 0 } collapsed) Ui.Warning($"catastrophic overfitting: robust validation accuracy collapsed in epoch(s) {string.Join(", ", collapsed)}; the best earlier epoch was kept");
            Ui.Out.MarkupLineInterpolated($"test accuracy [bold]{Ui.Percent(outcome.Training.Test.Accuracy)}[/] (loss {outcome.Training.Test.Loss:F4}) on {outcome.Training.Test.Images} images; training took {record.Epochs.Sum(e => e.Seconds):F0} s");
            Ui.Out.MarkupLineInterpolated($"signed package [bold]{packageDirectory}[/] (key {signingKey.Id}); run record {Path.Combine(runs, Trainer.RunRecordFile)}");
            return 0;
        });
        return command;
    }
}
