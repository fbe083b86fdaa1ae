using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.Evaluation;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>What the service smoke check measured (the check itself lives with the service).</summary>
public delegate Task<IReadOnlyDictionary<string, Metric>> ServiceSmokeCheck(string packageDirectory, string publicKeyPath, string workDirectory,
    Dataset mnist, CancellationToken cancellationToken);

/// <summary>
/// How to run an assessment. <paramref name="Stages"/> null runs every stage; otherwise only those listed and the stages they
/// build on (<see cref="SecurityAssessment.WithPrerequisites"/>); <paramref name="Force"/> redoes what runs
/// (<see cref="SecurityAssessment.Forces"/>).
/// </summary>
public sealed record AssessmentOptions(AssessmentProfile Profile, string OutputDirectory, string DataRoot, string SigningKeyPath, bool Force,
    string? RepositoryRoot, IReadOnlyList<string>? Stages = null);

/// <summary>One line of progress: which stage, and what it is doing.</summary>
public sealed record AssessmentProgress(string Stage, int Index, int Stages, string Message, bool Cached = false, bool Finished = false);

/// <summary>Everything an assessment produced, in stage order.</summary>
public sealed record AssessmentResults(string Profile, DateTimeOffset StartedUtc, double Seconds, string CodeVersion, MachineInfo Machine,
    IReadOnlyDictionary<string, string> DatasetDigests, IReadOnlyList<StageResult> Stages, IReadOnlyList<string>? SelectedStages = null)
{
    /// <summary>True when some stages were neither selected (assess --stages) nor in the cache: their figures are absent, not failed.</summary>
    public bool Partial => SelectedStages is not null && Stages.Count < SecurityAssessment.StageNames.Length;

    public IReadOnlyDictionary<string, Metric> Metrics =>
        Stages.SelectMany(s => s.Metrics).ToDictionary(kv => kv.Key, kv => kv.Value);
}

/// <summary>
/// The end-to-end assessment: verify data, train the baseline, evaluate, attack, train defended models, poison and
/// detect, sign and tamper, and smoke-test the service; each stage cached by its inputs and resumable.
/// </summary>
public sealed class SecurityAssessment(AssessmentOptions options, ServiceSmokeCheck serviceCheck, IProgress<AssessmentProgress>? progress = null)
{
    public static readonly string[] StageNames = ["data", "baseline", "evasion", "adversarial-training", "poisoning", "poison-defenses", "packaging", "service", "dependencies"];

    /// <summary>The stages each stage builds on: what --stages adds to a selection, and whose fingerprints key its cache.</summary>
    private static readonly Dictionary<string, string[]> Prerequisites = new()
    {
        ["data"] = [], ["baseline"] = ["data"], ["evasion"] = ["baseline"], ["adversarial-training"] = ["data"], ["poisoning"] = ["data"],
        ["poison-defenses"] = ["poisoning"], ["packaging"] = ["baseline"], ["service"] = ["baseline"], ["dependencies"] = [],
    };

    /// <summary>The stages to run for a selection: the selected ones and everything they build on, in the assessment's order.</summary>
    public static IReadOnlyList<string> WithPrerequisites(IEnumerable<string> selection)
    {
        ArgumentNullException.ThrowIfNull(selection);
        var needed = new HashSet<string>(StringComparer.Ordinal);
        void Add(string stage)
        {
            if (!Prerequisites.TryGetValue(stage, out var before))
                throw new ArgumentException($"unknown stage '{stage}'; the stages are {string.Join(", ", StageNames)}");
            if (!needed.Add(stage)) return;
            foreach (var prerequisite in before) Add(prerequisite);
        }
        foreach (var stage in selection) Add(stage);
        if (needed.Count == 0) throw new ArgumentException("no stage selected");
        return StageNames.Where(needed.Contains).ToArray();
    }

    /// <summary>
    /// Whether --force redoes a stage: every stage without --stages; with it, the stages named, not the ones they build on
    /// (those run only when the cache lacks them).
    /// </summary>
    public static bool Forces(AssessmentOptions options, string stage)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Force && (options.Stages is null || options.Stages.Contains(stage));
    }

    private readonly IReadOnlyList<string> selected = options.Stages is { } stages ? WithPrerequisites(stages) : StageNames;

    private readonly StageStore store = new(options.OutputDirectory);
    private readonly List<StageResult> finished = [];
    private readonly HashSet<string> redone = [];
    private AssessmentProfile Profile => options.Profile;

    public AssessmentResults Run(CancellationToken cancellationToken = default)
    {
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var (key, _) = TrainingPipeline.OpenOrCreateKey(options.SigningKeyPath, createIfMissing: true);
        using (key)
        {
            var mnist = new DatasetStore(options.DataRoot).Load("mnist");
            Stage("data", new { mnist.Digests }, _ => DataStage(mnist));
            var baseline = Stage("baseline", new { Profile.TrainSubset, Profile.Epochs, Profile.BaselineAugmentShift }, dir => BaselineStage(dir, mnist, key, cancellationToken));
            Stage("evasion", AttackSettingsKey(), dir => EvasionStage("evasion", dir, mnist, key, ModelOf(baseline!), "baseline", "baseline", cancellationToken));
            Stage("adversarial-training", new { Profile.TrainSubset, Profile.Defenses, settings = AttackSettingsKey() },
                dir => AdversarialTrainingStage(dir, mnist, key, cancellationToken));
            var poisoning = Stage("poisoning", new { Profile.PoisonCount, Profile.PoisonTrigger, Profile.PoisonTrainSubset, Profile.PoisonEpochs },
                dir => PoisoningStage(dir, mnist, key, cancellationToken));
            Stage("poison-defenses", new { Profile.RunStrip, Detection, version = 2 }, dir => PoisonDefenseStage(dir, poisoning!, key, cancellationToken));
            Stage("packaging", new { version = 1 }, dir => PackagingStage(dir, ModelOf(baseline!), key));
            Stage("service", new { version = 1 }, dir => ServiceStage(dir, ModelOf(baseline!), key, mnist, cancellationToken));
            Stage("dependencies", new { lockFiles = LockFiles().Select(File.ReadAllText).ToList(), advisories = AdvisoriesPath() is { } a ? File.ReadAllText(a) : "" },
                _ => DependencyStage());
            return new AssessmentResults(Profile.Name, started, clock.Elapsed.TotalSeconds, CodeVersion.Current(), MachineInfo.Current(TorchSharp.torch.get_num_threads()),
                mnist.Digests, finished, options.Stages is null ? null : selected);
        }
    }

    private sealed record StageOutput(IReadOnlyDictionary<string, Metric> Metrics, IReadOnlyDictionary<string, string> Files, JsonNode? Details = null);

    /// <summary>
    /// Runs a stage, or takes it from the cache. A stage not selected (assess --stages) is only taken from the cache, so the
    /// report keeps what an earlier run finished; null when it is not there or a stage it builds on is not.
    /// </summary>
    private StageResult? Stage(string name, object settings, Func<string, StageOutput> run)
    {
        var index = Array.IndexOf(StageNames, name) + 1;
        var upstream = Prerequisites[name].Select(p => finished.SingleOrDefault(f => f.Stage == p)).ToArray();
        if (upstream.Any(u => u is null)) return null;
        var fingerprint = StageStore.Fingerprint(name, new { profile = Profile.Name, settings }, upstream.Select(u => u!.Fingerprint).ToArray());
        if (!selected.Contains(name))
        {
            // A stage built on one redone in this invocation would describe the old result: leave it out.
            var kept = upstream.Any(u => redone.Contains(u!.Fingerprint)) ? null : store.Finished(name, fingerprint);
            progress?.Report(new AssessmentProgress(name, index, StageNames.Length, kept is null ? "not selected, no current result in the cache: left out" : $"not selected; cached ({kept.Seconds:F0} s when it ran)",
                Cached: kept is not null, Finished: true));
            if (kept is not null) finished.Add(kept);
            return kept;
        }
        var force = Forces(options, name);
        if (!force && store.Finished(name, fingerprint) is { } cached)
        {
            progress?.Report(new AssessmentProgress(name, index, StageNames.Length, $"cached ({cached.Seconds:F0} s when it ran)", Cached: true, Finished: true));
            finished.Add(cached);
            return cached;
        }
        if (force && Directory.Exists(store.Directory(name))) Directory.Delete(store.Directory(name), recursive: true);
        var resumed = store.Begin(name, fingerprint);
        progress?.Report(new AssessmentProgress(name, index, StageNames.Length, resumed ? "resuming" : "running"));
        var clock = Stopwatch.StartNew();
        var output = run(store.Directory(name));
        var result = new StageResult(name, fingerprint, clock.Elapsed.TotalSeconds, DateTimeOffset.UtcNow, output.Metrics,
            output.Files.ToDictionary(kv => kv.Key, kv => Path.GetRelativePath(options.OutputDirectory, kv.Value)), output.Details);
        store.Complete(result);
        redone.Add(fingerprint);
        progress?.Report(new AssessmentProgress(name, index, StageNames.Length, $"done in {result.Seconds:F0} s", Finished: true));
        finished.Add(result);
        return result;
    }

    private void Report(string stage, string message) =>
        progress?.Report(new AssessmentProgress(stage, Array.IndexOf(StageNames, stage) + 1, StageNames.Length, message));

    private IProgress<TrainingProgress> TrainingReporter(string stage, string what) => new InlineProgress<TrainingProgress>(p =>
        Report(stage, $"{what}: epoch {p.Epoch}/{p.Epochs}, batch {p.Batch}/{p.Batches}, {p.Phase}"));

    private object AttackSettingsKey() => new { Profile.AttackImages, Profile.Epsilon, Profile.PgdSteps, Profile.PgdStepSize, Profile.Restarts, Profile.WorstCaseAttacks, Profile.CurveEpsilons };

    /// <summary>The poison detector's settings (the defaults of detect-poison); part of the poison-defenses stage's inputs.</summary>
    private static PoisonDetectionOptions Detection { get; } = new();

    private AttackSettings Settings => new() { Epsilon = Profile.Epsilon, StepSize = Profile.PgdStepSize, Steps = Profile.PgdSteps, Restarts = Profile.Restarts };

    private string ModelOf(StageResult stage) => Path.Combine(options.OutputDirectory, stage.Files["model"]);

    private static StageOutput DataStage(Dataset mnist) => new(
        new Dictionary<string, Metric>
        {
            ["data.train_images"] = Metric.Count(mnist.Train.Count, "MNIST training images, SHA-256 verified"),
            ["data.test_images"] = Metric.Count(mnist.Test.Count, "MNIST test images, SHA-256 verified"),
        },
        new Dictionary<string, string>(), JsonSerializer.SerializeToNode(mnist.Digests));

    private StageOutput BaselineStage(string directory, Dataset mnist, SigningKey key, CancellationToken cancellationToken)
    {
        var training = new TrainingOptions { TrainSubset = Profile.TrainSubset, Epochs = Profile.Epochs, AugmentShift = Profile.BaselineAugmentShift };
        var trained = Train("baseline", training, mnist, directory, key, "baseline", cancellationToken);
        var confusion = Path.Combine(directory, "confusion.png");
        ConfusionMatrixPlot.Save(trained.Training.Test.ConfusionMatrix, "baseline on the MNIST test set", confusion);
        var curve = Path.Combine(directory, "training.png");
        var epochs = trained.Training.Record.Epochs;
        LineChart.Save(curve, "baseline training", "epoch", "accuracy (%)",
        [
            new Series("train", epochs.Select(e => ((double)e.Epoch, 100 * e.TrainAccuracy)).ToList()),
            new Series("test", epochs.Where(e => e.TestAccuracy is not null).Select(e => ((double)e.Epoch, 100 * e.TestAccuracy!.Value)).ToList()),
        ]);
        trained.Training.Network.Dispose();
        return new(new Dictionary<string, Metric>
        {
            ["baseline.clean_accuracy"] = Metric.Percent(trained.Training.Test.Accuracy, "baseline clean test accuracy"),
            ["baseline.train_images"] = Metric.Count(trained.Training.Record.TrainImages, "baseline training images"),
            ["baseline.epochs"] = Metric.Count(training.Epochs, "baseline epochs"),
            ["baseline.training_seconds"] = new(trained.Training.Record.Epochs.Sum(e => e.Seconds), "seconds", "baseline training time"),
        }, new Dictionary<string, string> { ["model"] = trained.PackageDirectory, ["confusion"] = confusion, ["training_curve"] = curve });
    }

    private PackagedTraining Train(string stage, TrainingOptions training, Dataset data, string directory, SigningKey key, string name, CancellationToken cancellationToken)
    {
        var runDirectory = Path.Combine(directory, "run-" + name);
        var resume = File.Exists(Path.Combine(runDirectory, Checkpoint.StateFile));
        return TrainingPipeline.TrainAndPackage(training, data, runDirectory, Path.Combine(directory, name), key, resume, TrainingReporter(stage, name), cancellationToken);
    }

    /// <summary>
    /// Clean, FGSM, PGD and worst-case accuracy of one model, plus its curve and example grid; <paramref name="prefix"/> keys its
    /// metrics and files, <paramref name="model"/> names it in labels and pictures.
    /// </summary>
    private StageOutput EvasionStage(string stage, string directory, Dataset mnist, SigningKey key, string package, string prefix, string model, CancellationToken cancellationToken)
    {
        using var loaded = ModelPackage.Load(package, key.PublicKey);
        using var classifier = new NetworkClassifier(loaded.Network);
        var test = mnist.Test.Take(Profile.AttackImages);
        Report(stage, $"{model}: robustness curve over eps {string.Join(", ", Profile.CurveEpsilons)}");
        string[] curveAttacks = ["fgsm", "pgd"];
        var curve = RobustnessCurve.Measure(classifier, test, Profile.CurveEpsilons, curveAttacks, Settings, new InlineProgress<string>(m => Report(stage, $"{model}: {m}")), cancellationToken);
        Report(stage, $"{model}: worst case of {string.Join(", ", Profile.WorstCaseAttacks)} at eps {Profile.Epsilon}");
        var attacks = Profile.WorstCaseAttacks.Select(a => AttackCatalog.Create(a, Settings)).ToList();
        var run = AttackEvaluator.Run(classifier, test, attacks, progress: new InlineProgress<AttackProgress>(p =>
            Report(stage, $"{model}: {p.Attack} ({p.AttackIndex}/{p.Attacks}) on the {p.Total} inputs still robust: {p.Done} done")), cancellationToken: cancellationToken);
        var grid = Path.Combine(directory, $"{prefix}-adversarial.png");
        AdversarialGrid.Save(grid, test, run);
        double At(string attack) => curve.Single(p => p.Attack == attack && Math.Abs(p.Epsilon - Profile.Epsilon) < 1e-9).Accuracy;
        // Separate runs use other random starts, so a single attack can occasionally do better than the chained run: keep the lowest.
        var worstCase = Math.Min(run.Report.RobustAccuracy, Math.Min(At("fgsm"), At("pgd")));
        var curvePng = Path.Combine(directory, $"{prefix}-robustness.png");
        var series = curve.GroupBy(p => p.Attack)
            .Select(g => new Series(g.Key == RobustnessCurve.WorstCase ? $"worst of {string.Join(", ", curveAttacks)}" : g.Key, g.Select(p => (p.Epsilon, 100 * p.Accuracy)).ToList())).ToList();
        // The stronger attacks run at the assessed eps only: their worst case is one point, which the curve must not hide.
        if (!Profile.WorstCaseAttacks.Order().SequenceEqual(curveAttacks.Order()))
            series.Add(new($"worst of {Profile.WorstCaseAttacks.Count} attacks", [(Profile.Epsilon, 100 * worstCase)]));
        LineChart.Save(curvePng, $"{model}: accuracy against eps ({test.Count} test images)", "eps (L-inf)", "accuracy (%)", series, 0, 100);
        var report = run.Report;
        var metrics = new Dictionary<string, Metric>
        {
            [$"{prefix}.attack_images"] = Metric.Count(test.Count, $"{model}: test images attacked"),
            [$"{prefix}.fgsm_accuracy"] = Metric.Percent(At("fgsm"), $"{model}: accuracy under FGSM, eps {Profile.Epsilon}"),
            [$"{prefix}.pgd_accuracy"] = Metric.Percent(At("pgd"), $"{model}: accuracy under PGD-{Profile.PgdSteps} (alpha {Profile.PgdStepSize}, random start), eps {Profile.Epsilon}"),
            [$"{prefix}.worst_case_accuracy"] = Metric.Percent(worstCase,
                $"{model}: accuracy under the strongest evaluation (per-input worst case of {string.Join(", ", Profile.WorstCaseAttacks)}, or FGSM or PGD alone where lower), eps {Profile.Epsilon}"),
            [$"{prefix}.attack_success_rate"] = Metric.Percent(report.AttackSuccessRate, $"{model}: attack success rate on correctly classified inputs"),
            [$"{prefix}.median_l2"] = new(report.Perturbation.MedianL2, "ratio", $"{model}: median L2 of successful perturbations"),
        };
        if (prefix == "baseline") metrics["baseline.clean_accuracy_attacked_subset"] = Metric.Percent(report.CleanAccuracy, "baseline: clean accuracy on the attacked images");
        return new(metrics, new Dictionary<string, string> { [$"{prefix}_grid"] = grid, [$"{prefix}_curve"] = curvePng }, JsonSerializer.SerializeToNode(new { curve, report }, JsonFormat.Documents));
    }

    private StageOutput AdversarialTrainingStage(string directory, Dataset mnist, SigningKey key, CancellationToken cancellationToken)
    {
        var metrics = new Dictionary<string, Metric>();
        var files = new Dictionary<string, string>();
        foreach (var recipe in Profile.Defenses)
        {
            // Each defence is kept once done, so an interrupted stage resumes at the next one (hours apart in the full profile).
            var defense = store.Part("adversarial-training", recipe.Defense, () => DefenseOutcome(directory, mnist, key, recipe, cancellationToken));
            foreach (var (k, v) in defense.Metrics) metrics[k] = v;
            foreach (var (k, v) in defense.Files) files[k] = v;
        }
        return new(metrics, files);
    }

    /// <summary>One defence of the adversarial-training stage: train it, then attack it like the baseline.</summary>
    private StageOutput DefenseOutcome(string directory, Dataset mnist, SigningKey key, DefenseRecipe recipe, CancellationToken cancellationToken)
    {
        var metrics = new Dictionary<string, Metric>();
        var files = new Dictionary<string, string>();
        var trained = Train("adversarial-training", recipe.Options(Profile.TrainSubset), mnist, directory, key, recipe.Defense, cancellationToken);
        trained.Training.Network.Dispose();
        var prefix = $"defense_{recipe.Defense.Replace('-', '_')}";
        metrics[$"{prefix}.clean_accuracy"] = Metric.Percent(trained.Training.Test.Accuracy, $"{recipe.Defense}-trained: clean test accuracy");
        metrics[$"{prefix}.training_seconds"] = new(trained.Training.Record.Epochs.Sum(e => e.Seconds), "seconds", $"{recipe.Defense}-trained: training time");
        var record = trained.Training.Record;
        var robustByEpoch = record.RobustValidationByEpoch();
        if (robustByEpoch.Count > 0)
        {
            var robustCurve = Path.Combine(directory, $"{prefix}-robust-validation.png");
            var kept = record.SelectedEpoch ?? record.Options.Epochs;
            var series = new List<Series> { new("PGD", robustByEpoch.Select(p => ((double)p.Epoch, 100 * p.RobustValidationAccuracy)).ToList()) };
            var keptPoint = robustByEpoch.Where(p => p.Epoch == kept).Select(p => ((double)p.Epoch, 100 * p.RobustValidationAccuracy)).ToList();
            if (keptPoint.Count > 0) series.Add(new($"kept: epoch {kept}", keptPoint));
            LineChart.Save(robustCurve, $"{recipe.Defense}-trained: PGD-{record.Options.RobustValidationSteps} accuracy on {record.Options.RobustValidationSize} held-out images per epoch",
                "epoch", "accuracy (%)", series, 0, 100);
            files[$"{prefix}_robust_validation"] = robustCurve;
            metrics[$"{prefix}.kept_epoch"] = Metric.Count(kept, $"{recipe.Defense}-trained: epoch whose weights were kept");
        }
        var evasion = EvasionStage("adversarial-training", directory, mnist, key, trained.PackageDirectory, prefix, $"{recipe.Defense}-trained", cancellationToken);
        foreach (var (k, v) in evasion.Metrics) metrics[k] = v;
        foreach (var (k, v) in evasion.Files) files[k] = v;
        files[$"{prefix}_model"] = trained.PackageDirectory;
        return new(metrics, files);
    }

    private StageOutput PoisoningStage(string directory, Dataset mnist, SigningKey key, CancellationToken cancellationToken)
    {
        var dataDirectory = Path.Combine(directory, "data");
        var poisonOptions = new PoisonOptions(PoisonMode.DirtyLabel, Profile.PoisonCount, Trigger: Profile.PoisonTrigger);
        var clean = mnist;
        if (Profile.PoisonTrainSubset is { } subset)
        {
            // Poison a fixed clean subset, so every poisoned sample is in what the model trains on.
            var subsetDirectory = Path.Combine(directory, "clean-subset");
            if (!Directory.Exists(subsetDirectory))
            {
                var order = Enumerable.Range(0, mnist.Train.Count).ToArray();
                new SeededRandom(1).Shuffle(order);
                var chosen = order[..subset];
                Array.Sort(chosen);
                DerivedDataset.Write(mnist, mnist.Train.Select(chosen), subsetDirectory, $"mnist-subset-{subset}", $"{subset} images of mnist drawn with seed 1");
            }
            clean = new DatasetStore(options.DataRoot).Load(subsetDirectory);
        }
        Report("poisoning", $"writing a poisoned copy: {Profile.PoisonCount} dirty-label samples of {clean.Train.Count}, target {poisonOptions.TargetClass}");
        var manifest = Directory.Exists(dataDirectory) ? PoisonManifests.TryLoad(dataDirectory)! : DataPoisoner.Write(clean, poisonOptions, dataDirectory);
        var poisoned = new DatasetStore(options.DataRoot).Load(dataDirectory);
        var training = new TrainingOptions { Epochs = Profile.PoisonEpochs };
        var trained = Train("poisoning", training, poisoned, directory, key, "backdoor", cancellationToken);
        var backdoor = BackdoorEvaluator.Evaluate(trained.Training.Network, mnist.Test, manifest.Trigger!, manifest.TargetClass);
        var examples = Path.Combine(directory, "backdoor.png");
        BackdoorEvaluator.SaveExamples(trained.Training.Network, mnist.Test, manifest.Trigger!, manifest.TargetClass, examples);
        var perClass = Path.Combine(directory, "backdoor-per-class.png");
        BackdoorEvaluator.PlotPerSourceClass(backdoor, perClass);
        trained.Training.Network.Dispose();
        var weakest = backdoor.PerSourceClass.MinBy(s => s.AttackSuccessRate)!;
        return new(new Dictionary<string, Metric>
        {
            ["poison.samples"] = Metric.Count(manifest.Samples.Count, $"poisoned training samples (dirty label; trigger: {manifest.Trigger})"),
            ["poison.share"] = Metric.Percent((double)manifest.Samples.Count / manifest.TrainImages, "share of the training set poisoned"),
            ["poison.attack_success_rate"] = Metric.Percent(backdoor.AttackSuccessRate, $"backdoor attack success rate (triggered test images of other classes predicted {manifest.TargetClass})"),
            ["poison.triggered_images"] = Metric.Count(backdoor.TriggeredImages, "triggered test images the success rate counts"),
            ["poison.triggered_missed"] = Metric.Count(backdoor.TriggeredImages - backdoor.PerSourceClass.Sum(s => s.PredictedAsTarget), $"triggered test images not predicted {manifest.TargetClass}"),
            ["poison.weakest_class_success"] = Metric.Percent(weakest.AttackSuccessRate, $"backdoor success on its weakest source class (class {weakest.SourceClass})"),
            ["poison.clean_accuracy"] = Metric.Percent(backdoor.CleanAccuracy, "poisoned model: clean test accuracy"),
        }, new Dictionary<string, string> { ["model"] = trained.PackageDirectory, ["data"] = dataDirectory, ["backdoor_examples"] = examples, ["backdoor_per_class"] = perClass });
    }

    private StageOutput PoisonDefenseStage(string directory, StageResult poisoning, SigningKey key, CancellationToken cancellationToken)
    {
        var data = new DatasetStore(options.DataRoot).Load(Path.Combine(options.OutputDirectory, poisoning.Files["data"]));
        var manifest = PoisonManifests.TryLoad(data.Directory)!;
        using var model = ModelPackage.Load(ModelOf(poisoning), key.PublicKey);
        Report("poison-defenses", "activation clustering over the training set's penultimate-layer activations");
        var detection = PoisonDetector.Detect(model.Network, data.Train, Detection, cancellationToken: cancellationToken).ScoredAgainst(manifest, data.Train.Labels);
        JsonFormat.Save(Path.Combine(directory, PoisonDetectionReport.FileName), detection);
        var detectionPlot = Path.Combine(directory, "detection-scores.png");
        PoisonDetector.Plot(detection, detectionPlot);
        var score = detection.Score!;
        var metrics = new Dictionary<string, Metric>
        {
            ["detection.recall"] = Metric.Percent(score.Recall, "poison detection recall (poisoned samples flagged)"),
            ["detection.precision"] = Metric.Percent(score.Precision, "poison detection precision"),
            ["detection.clean_flagged_target"] = Metric.Percent(score.CleanFlaggedRateInTargetClass, $"clean samples of class {score.TargetClass} flagged"),
        };
        Report("poison-defenses", "sanitize: retraining without the flagged samples");
        var sanitized = SanitizeExperiment.Run(model, data, detection, Path.Combine(directory, "sanitized-data"), Path.Combine(directory, "sanitized"),
            Path.Combine(directory, "run-sanitized"), key, resume: File.Exists(Path.Combine(directory, "run-sanitized", Checkpoint.StateFile)),
            progress: TrainingReporter("poison-defenses", "sanitized"), cancellationToken: cancellationToken);
        metrics["sanitize.removed"] = Metric.Count(sanitized.Removed, "training samples removed by sanitizing");
        metrics["sanitize.attack_success_rate"] = Metric.Percent(sanitized.After!.AttackSuccessRate, "backdoor attack success rate after sanitizing and retraining");
        metrics["sanitize.clean_accuracy"] = Metric.Percent(sanitized.After.CleanAccuracy, "sanitized model: clean test accuracy");
        var files = new Dictionary<string, string> { ["detection"] = Path.Combine(directory, PoisonDetectionReport.FileName), ["detection_scores"] = detectionPlot };
        if (Profile.RunStrip)
        {
            Report("poison-defenses", "STRIP on the poisoned model");
            var strip = StripEvaluation.Run(model.Network, data.Test, manifest.Trigger!, manifest.TargetClass, new StripOptions());
            metrics["strip.true_positive_rate"] = Metric.Percent(strip.TruePositiveRate, "STRIP: triggered inputs flagged");
            metrics["strip.false_positive_rate"] = Metric.Percent(strip.FalsePositiveRate, "STRIP: clean inputs flagged");
            var stripPlot = Path.Combine(directory, "strip-entropies.png");
            StripEvaluation.Plot(strip, stripPlot);
            files["strip_entropies"] = stripPlot;
        }
        return new(metrics, files);
    }

    /// <summary>Signs, verifies, then flips bytes of a copy's weights and manifest and counts how many changes verification refuses.</summary>
    private static StageOutput PackagingStage(string directory, string package, SigningKey key)
    {
        var verified = ModelPackage.Verify(package, key.PublicKey);
        var copy = Path.Combine(directory, "tampered");
        var tried = 0;
        var refused = 0;
        foreach (var file in new[] { ModelPackage.WeightsFile, ModelPackage.ManifestFile, ModelPackage.SignatureFile })
        {
            var original = File.ReadAllBytes(Path.Combine(package, file));
            var positions = Enumerable.Range(0, 20).Select(i => (int)((long)i * (original.Length - 1) / 19)).Distinct();
            foreach (var position in positions)
            {
                if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true);
                Directory.CreateDirectory(copy);
                foreach (var f in Directory.GetFiles(package)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
                var tampered = (byte[])original.Clone();
                tampered[position] ^= 0x01;
                File.WriteAllBytes(Path.Combine(copy, file), tampered);
                tried++;
                if (!ModelPackage.Verify(copy, key.PublicKey).Trusted) refused++;
            }
        }
        Directory.Delete(copy, recursive: true);
        var unsigned = Path.Combine(directory, "unsigned");
        Directory.CreateDirectory(unsigned);
        foreach (var f in Directory.GetFiles(package).Where(f => Path.GetFileName(f) != ModelPackage.SignatureFile)) File.Copy(f, Path.Combine(unsigned, Path.GetFileName(f)), overwrite: true);
        var unsignedRefused = !ModelPackage.Verify(unsigned, key.PublicKey).Trusted;
        Directory.Delete(unsigned, recursive: true);
        return new(new Dictionary<string, Metric>
        {
            ["packaging.signed_package_verifies"] = Metric.Count(verified.Trusted ? 1 : 0, "the signed baseline package verifies (1 = yes)"),
            ["packaging.tampered_tried"] = Metric.Count(tried, "single-bit changes made to weights, manifest and signature"),
            ["packaging.tampered_refused"] = Metric.Count(refused, "single-bit changes refused by verification"),
            ["packaging.unsigned_refused"] = Metric.Count(unsignedRefused ? 1 : 0, "an unsigned copy is refused (1 = yes)"),
        }, new Dictionary<string, string>());
    }

    private StageOutput ServiceStage(string directory, string package, SigningKey key, Dataset mnist, CancellationToken cancellationToken)
    {
        var publicKey = Path.Combine(directory, "signing.pub");
        AtomicFile.WriteAllText(publicKey, key.PublicKey.ExportPem());
        Report("service", "starting the service on 127.0.0.1 and speaking HTTP to it");
        var metrics = serviceCheck(package, publicKey, directory, mnist, cancellationToken).GetAwaiter().GetResult();
        return new(metrics, new Dictionary<string, string>());
    }

    private string? AdvisoriesPath() => options.RepositoryRoot is { } root && File.Exists(Path.Combine(root, "build", "advisories.json")) ? Path.Combine(root, "build", "advisories.json") : null;

    private IReadOnlyList<string> LockFiles() => options.RepositoryRoot is { } root ? CycloneDxSbom.ShippedLockFiles(root) : [];

    private StageOutput DependencyStage()
    {
        var lockFiles = LockFiles();
        if (lockFiles.Count == 0 || AdvisoriesPath() is not { } advisoriesPath)
            return new(new Dictionary<string, Metric>(), new Dictionary<string, string>(), JsonValue.Create("no repository checkout here: lock files and advisories not found"));
        var components = CycloneDxSbom.ReadLockFiles(lockFiles);
        var advisories = PackageAdvisories.Load(advisoriesPath);
        var hits = PackageAdvisories.Check(components, advisories);
        return new(new Dictionary<string, Metric>
        {
            ["dependencies.packages"] = Metric.Count(components.Count, "NuGet packages the tool ships, transitive ones included"),
            ["dependencies.advisories"] = Metric.Count(advisories.Count, "advisories in the offline snapshot"),
            ["dependencies.vulnerable"] = Metric.Count(hits.Count, "packages with a known advisory"),
        }, new Dictionary<string, string>());
    }

    /// <summary>Reports on the caller's thread, unlike Progress&lt;T&gt;, so messages arrive in order.</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
