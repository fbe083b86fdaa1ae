using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.Modeling;
using SecureMnist.Security;
using SecureMnist.Training;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Evaluation.PoisonBench;

/// <summary>
/// Runs one grid cell: poisons the seed's training subset, trains on it, measures the backdoor, runs every detector on the training set
/// (scored against the ground truth), STRIP with both blends, and sanitizes with the default detector. A clean control cell trains on
/// the unpoisoned subset and runs the detectors only; its weights are kept as the clean-label adversarial attack's surrogate for that seed.
/// </summary>
public sealed class CellExperiment
{
    private const string SurrogateFile = "weights.safetensors";
    private readonly PoisonGrid grid;
    private readonly Dataset mnist;
    private readonly CellCache cache;
    private readonly string codeVersion;
    private readonly Dictionary<int, LabeledImages> subsets = [];
    private LabeledImages? reference;

    public CellExperiment(PoisonGrid grid, Dataset mnist, CellCache cache, string codeVersion)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(mnist);
        ArgumentNullException.ThrowIfNull(cache);
        grid.Validate();
        if (mnist.Train.Count < grid.TrainImages) throw new ArgumentException($"the grid trains on {grid.TrainImages} images; {mnist.Name} has {mnist.Train.Count}");
        if (mnist.Test.Count < grid.TestImages + grid.ReferenceImages)
            throw new ArgumentException($"the grid tests on {grid.TestImages} images and votes with {grid.ReferenceImages} more as the trusted reference; {mnist.Name} has {mnist.Test.Count} test images");
        this.grid = grid;
        this.mnist = mnist;
        this.cache = cache;
        this.codeVersion = codeVersion;
    }

    public string Fingerprint(GridCell cell) => CellCache.Fingerprint(grid, cell, codeVersion);

    /// <summary>The cell's result, from the cache or measured now (see <see cref="CellCache.GetOrRun"/>).</summary>
    public CellResult Run(GridCell cell, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cell);
        var fingerprint = Fingerprint(cell);
        return cache.GetOrRun(cell, fingerprint, () => Measure(cell, fingerprint, progress, cancellationToken),
            owner => progress?.Report($"waiting for {owner}, which is running it"), cancellationToken);
    }

    /// <summary>The training images of a seed: a seeded draw of the grid's size from the training set (all of it at 60,000).</summary>
    public LabeledImages Subset(int seed)
    {
        if (subsets.TryGetValue(seed, out var cached)) return cached;
        var train = mnist.Train;
        if (grid.TrainImages < train.Count)
        {
            var order = Enumerable.Range(0, train.Count).ToArray();
            new SeededRandom(seed).Shuffle(order);
            var chosen = order[..grid.TrainImages];
            Array.Sort(chosen);
            train = train.Select(chosen);
        }
        subsets[seed] = train;
        return train;
    }

    private CellResult Measure(GridCell cell, string fingerprint, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var work = cache.WorkDirectory(cell, fingerprint);
        var clean = Subset(cell.Seed);
        var test = mnist.Test.Take(grid.TestImages);
        var classSizes = clean.ClassCounts();
        var options = new TrainingOptions { Architecture = grid.Architecture, Epochs = grid.Epochs, Seed = cell.Seed };

        if (cell.IsControl)
        {
            progress?.Report($"training on {clean.Count} clean images");
            using var control = Train(options, clean, test, Path.Combine(work, "train"), cancellationToken);
            AtomicWeights(control.Network, cache.ArtifactPath(cell, fingerprint, SurrogateFile));
            progress?.Report("running the detectors");
            var (controlDetectors, _) = Detect(control.Network, clean, Reference, manifest: null, target: null, cancellationToken);
            return new CellResult(cell, fingerprint, clean.Count, classSizes, 0, 0, control.Accuracy, null, null, controlDetectors, [], null,
                stopwatch.Elapsed.TotalSeconds, CellCache.Worker);
        }

        var attack = PoisonGrid.Attack(cell.Attack);
        var count = Math.Max(1, (int)Math.Round(cell.Rate * classSizes[cell.Target]));
        var poisonOptions = attack.Options(count, cell.Target, cell.Seed);
        var cleanSet = new Dataset($"{mnist.Name}-bench-s{cell.Seed}", mnist.Directory, clean, test, mnist.Digests);
        PoisonedTrainingSet poisoned;
        if (attack.Mode == PoisonMode.CleanLabelAdversarial)
        {
            using var surrogate = Surrogate(cell.Seed, progress, cancellationToken);
            progress?.Report($"perturbing {count} target images against the surrogate");
            poisoned = DataPoisoner.Poison(cleanSet, poisonOptions, surrogate);
        }
        else
        {
            poisoned = DataPoisoner.Poison(cleanSet, poisonOptions);
        }
        var manifest = poisoned.Manifest;
        progress?.Report($"training on {poisoned.Train.Count} images, {manifest.Indices().Count} poisoned");
        // The attacker who also controls training adds the STRIP-evasion term; the defender's sanitizing retrain below does not.
        var attackerOptions = attack.StripEvasionWeight is { } weight ? options with { StripEvasion = new StripEvasion(attack.Trigger!, weight) } : options;
        using var model = Train(attackerOptions, poisoned.Train, test, Path.Combine(work, "train"), cancellationToken);
        BackdoorReport? backdoor = manifest.Trigger is null ? null : BackdoorEvaluator.Evaluate(model.Network, test, manifest);

        progress?.Report("running the detectors");
        var (detectors, defaultFlags) = Detect(model.Network, poisoned.Train, Reference, manifest, cell.Target, cancellationToken);

        var strip = new List<StripOutcome>();
        if (manifest.Trigger is { } trigger)
        {
            progress?.Report("STRIP, add-and-clip and alpha blends");
            foreach (var blend in new[] { StripBlend.Add, StripBlend.Alpha })
            {
                cancellationToken.ThrowIfCancellationRequested();
                var report = StripEvaluation.Run(model.Network, test.Take(PoisonGrid.StripPool + grid.StripCalibration + grid.StripImages), trigger, cell.Target,
                    new StripOptions(grid.StripOverlays, Seed: cell.Seed, Blend: blend), PoisonGrid.StripPool, grid.StripCalibration, manifest.AttackedClasses);
                strip.Add(new StripOutcome(blend == StripBlend.Add ? "add" : "alpha", report.Threshold, report.CleanImages, report.CleanFlagged, report.FalsePositiveRate,
                    report.TriggeredImages, report.TriggeredFlagged, report.TruePositiveRate));
            }
        }

        SanitizeOutcome? sanitized = null;
        if (grid.Sanitize)
            sanitized = Sanitize(cell, options, poisoned.Train, manifest, detectors[0].Method, defaultFlags, backdoor, model.Accuracy, test, work, progress, cancellationToken);
        return new CellResult(cell, fingerprint, poisoned.Train.Count, classSizes, manifest.Indices().Count, manifest.Samples.Count(s => s.Cover),
            model.Accuracy, backdoor?.AttackSuccessRate, backdoor?.TriggeredImages, detectors, strip, sanitized, stopwatch.Elapsed.TotalSeconds, CellCache.Worker);
    }

    /// <summary>The default detector's flags removed, the same recipe retrained, and the backdoor measured again.</summary>
    private SanitizeOutcome Sanitize(GridCell cell, TrainingOptions options, LabeledImages train, PoisonManifest manifest, string method, HashSet<int> removed,
        BackdoorReport? before, double accuracyBefore, LabeledImages test, string work, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        if (removed.Count == 0)
            return new SanitizeOutcome(method, 0, 0, Retrained: false, accuracyBefore, before?.AttackSuccessRate);
        var kept = Enumerable.Range(0, train.Count).Where(i => !removed.Contains(i)).ToArray();
        progress?.Report($"sanitize, retraining without {removed.Count} flagged samples");
        using var model = Train(options, train.Select(kept), test, Path.Combine(work, "sanitized"), cancellationToken);
        var after = manifest.Trigger is null ? null : BackdoorEvaluator.Evaluate(model.Network, test, manifest);
        var poison = manifest.Indices();
        return new SanitizeOutcome(method, removed.Count, removed.Count(poison.Contains), Retrained: true, model.Accuracy, after?.AttackSuccessRate);
    }

    /// <summary>The trusted reference set: the <see cref="PoisonGrid.ReferenceImages"/> test images after the ones the cells are measured on.</summary>
    private LabeledImages Reference => reference ??= mnist.Test.Select([.. Enumerable.Range(grid.TestImages, grid.ReferenceImages)]);

    /// <summary>Every detector on the training set's activations (or its pixels); the first is the default, whose flags sanitizing removes.</summary>
    private static (List<DetectorOutcome> Outcomes, HashSet<int> DefaultFlags) Detect(Module<Tensor, Tensor> network, LabeledImages train, LabeledImages reference,
        PoisonManifest? manifest, int? target, CancellationToken cancellationToken)
    {
        var activations = FeatureActivations.Extract(network, train, cancellationToken: cancellationToken);
        FeatureActivations? pixels = null;
        var outcomes = new List<DetectorOutcome>();
        HashSet<int>? defaultFlags = null;
        foreach (var method in Methods)
        {
            var features = PoisonDetector.ReadsPixels(method) ? pixels ??= FeatureActivations.Pixels(train) : activations;
            var report = PoisonDetector.Detect(features, train.Labels, new PoisonDetectionOptions(method), cancellationToken, scoreClass: target, reference: reference);
            defaultFlags ??= report.Flagged.Select(f => f.Index).ToHashSet();
            outcomes.Add(Outcome(report, train.Labels, manifest, target));
        }
        return (outcomes, defaultFlags!);
    }

    /// <summary>The detectors in the order the bench reports them: the default first.</summary>
    public static IReadOnlyList<PoisonDetectionMethod> Methods { get; } = DefaultFirst(new PoisonDetectionOptions().Method);

    private static PoisonDetectionMethod[] DefaultFirst(PoisonDetectionMethod method) =>
        [method, .. Enum.GetValues<PoisonDetectionMethod>().Where(m => m != method)];

    private static DetectorOutcome Outcome(PoisonDetectionReport report, IReadOnlyList<byte> labels, PoisonManifest? manifest, int? target)
    {
        var flagged = report.Flagged.Select(f => f.Index).ToHashSet();
        var perClass = new int[10];
        foreach (var index in flagged) perClass[labels[index]]++;
        var poison = manifest?.Indices() ?? [];
        var truePositives = flagged.Count(poison.Contains);
        var targetClass = target ?? -1;
        var cleanInTarget = Enumerable.Range(0, labels.Count).Count(i => labels[i] == targetClass && !poison.Contains(i));
        var cleanFlaggedInTarget = flagged.Count(i => labels[i] == targetClass && !poison.Contains(i));
        double? auroc = null;
        IReadOnlyList<double>? roc = null;
        if (report.ScoredClass is { } scored && poison.Count > 0)
        {
            var positives = new List<double>();
            var negatives = new List<double>();
            for (var k = 0; k < scored.Members.Count; k++) (poison.Contains(scored.Members[k]) ? positives : negatives).Add(scored.Scores[k]);
            if (positives.Count > 0 && negatives.Count > 0)
            {
                auroc = Roc.Auc(positives, negatives);
                roc = [.. CellResult.RocFalsePositiveRates.Select(fpr => Roc.TruePositiveRateAt(positives, negatives, fpr))];
            }
        }
        return new DetectorOutcome(PoisonDetector.MethodName(report.Options.Method), flagged.Count, poison.Count, truePositives,
            poison.Count == 0 ? null : (double)truePositives / poison.Count, flagged.Count == 0 ? null : (double)truePositives / flagged.Count,
            cleanInTarget, cleanFlaggedInTarget, cleanInTarget == 0 ? 0 : (double)cleanFlaggedInTarget / cleanInTarget, flagged.Count - truePositives,
            perClass, auroc, roc);
    }

    /// <summary>The clean control's weights for a seed (running the control first if no process has).</summary>
    private Module<Tensor, Tensor> Surrogate(int seed, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var control = new GridCell(GridCell.CleanControl, 0, -1, seed);
        var fingerprint = Fingerprint(control);
        Run(control, progress, cancellationToken);
        var network = Architectures.Create(grid.Architecture);
        ModelWeights.Load(network, Safetensors.Parse(File.ReadAllBytes(cache.ArtifactPath(control, fingerprint, SurrogateFile))));
        network.eval();
        return network;
    }

    private static void AtomicWeights(Module<Tensor, Tensor> network, string path) =>
        IO.AtomicFile.WriteAllBytes(path, Safetensors.Serialize(ModelWeights.Export(network)));

    private sealed record TrainedModel(Module<Tensor, Tensor> Network, double Accuracy) : IDisposable
    {
        public void Dispose() => Network.Dispose();
    }

    /// <summary>Trains with the grid's recipe (resuming an interrupted run of this cell) and scores clean accuracy on the test images.</summary>
    private TrainedModel Train(TrainingOptions options, LabeledImages train, LabeledImages test, string runDirectory, CancellationToken cancellationToken)
    {
        var dataset = new Dataset($"{mnist.Name}-bench", mnist.Directory, train, test, mnist.Digests);
        var resume = Checkpoint.TryReadState(runDirectory) is not null;
        var result = new Trainer(options, dataset, runDirectory, testEachEpoch: false).Run(resume, cancellationToken: cancellationToken);
        return new TrainedModel(result.Network, result.Test.Accuracy);
    }
}
