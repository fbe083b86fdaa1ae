using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.Modeling;
using SecureMnist.Privacy;
using SecureMnist.Security;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Training;

public sealed record TrainingResult(Module<Tensor, Tensor> Network, RunRecord Record, EvaluationReport Test);

/// <summary>
/// Trains a network on a verified dataset: seeded shuffles and dropout per epoch (so a resumed run
/// computes what an uninterrupted one would), a checkpoint after each epoch, and a run record.
/// </summary>
public sealed class Trainer
{
    public const string RunRecordFile = "run.json";
    public const string BestWeightsFile = "best.safetensors";
    /// <summary>A fall of robust validation accuracy this large below the best so far marks catastrophic overfitting.</summary>
    public const double CollapseThreshold = 0.2;
    private readonly TrainingOptions options;
    private readonly Dataset dataset;
    private readonly string runDirectory;

    private readonly bool testEachEpoch;

    /// <summary>For a network with a fixed first stage: the test set's features and labels, computed at the first epoch's test.</summary>
    private Tensor? testFeatures;
    private Tensor? testLabels;

    /// <param name="testEachEpoch">Without a validation set, whether each epoch is scored on the test set (shadow models skip it: nobody reads it).</param>
    public Trainer(TrainingOptions options, Dataset dataset, string runDirectory, bool testEachEpoch = true)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(dataset);
        options.Validate();
        this.options = options;
        this.dataset = dataset;
        this.runDirectory = runDirectory;
        this.testEachEpoch = testEachEpoch;
    }

    public TrainingResult Run(bool resume, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(runDirectory);
        var (train, validation) = Split(options, dataset);
        manual_seed(options.Seed);
        var network = Architectures.Create(options.Architecture);
        using var optimizer = CreateOptimizer(network);
        // With weight averaging the average is what is validated, kept and returned; the raw weights only train.
        using var average = options.WeightAverageDecay is { } decay ? new WeightAverage(options.Architecture, network, decay) : null;
        var evaluated = average?.Network ?? network;
        var record = NewRecord(train.Count, validation?.Count ?? 0);
        var firstEpoch = 1;

        var saved = Checkpoint.TryReadState(runDirectory);
        if (resume)
        {
            if (saved is null) throw new InvalidOperationException($"nothing to resume: {runDirectory} has no {Checkpoint.StateFile}");
            if (saved.Record.Options != options)
                throw new InvalidOperationException($"the run in {runDirectory} used different options; resume with the same options or start a new run");
            Checkpoint.Restore(runDirectory, saved, network, (OptimizerHelper)optimizer, average?.Network);
            record = saved.Record with { Resumes = saved.Record.Resumes + 1 };
            firstEpoch = saved.CompletedEpochs + 1;
        }
        else if (saved is not null)
        {
            throw new InvalidOperationException($"{runDirectory} already holds a run; pass --resume to continue it, or choose another --run-dir");
        }

        using var images = train.ImagesTensor();
        using var labels = train.LabelsTensor();
        var robustValidation = options.RobustValidationSize > 0 ? validation!.Take(options.RobustValidationSize) : null;
        var batches = (train.Count + options.BatchSize - 1) / options.BatchSize;
        PrivateTraining? privately = null;
        if (options.Privacy is { } privacy)
        {
            privately = PrivateTraining.Plan(privacy, train.Count, options.BatchSize, options.Epochs);
            privately.AccountCompletedEpochs(firstEpoch - 1);
            batches = privately.StepsPerEpoch;
        }
        // A fixed first stage (a scattering transform) is computed once for the training set, not at every step.
        if (privately is not null && network is IFixedFeatureNetwork && firstEpoch <= options.Epochs)
            progress?.Report(new TrainingProgress(firstEpoch, options.Epochs, 0, batches, 0, 0, 0, TimeSpan.Zero, $"computing the fixed features of {train.Count} images"));
        using var features = privately is not null && network is IFixedFeatureNetwork fixedStage && firstEpoch <= options.Epochs
            ? FixedFeatures.Of(fixedStage, images, cancellationToken: cancellationToken) : null;
        for (var epoch = firstEpoch; epoch <= options.Epochs; epoch++)
        {
            var epochRecord = privately is null
                ? RunEpoch(network, average, optimizer, TrainingObjectives.For(options, epoch), images, labels, epoch, batches, validation, progress, cancellationToken)
                : RunPrivateEpoch(privately, network, average, optimizer, features ?? images, labels, features is not null, epoch, validation, progress, cancellationToken);
            if (robustValidation is not null)
            {
                progress?.Report(new TrainingProgress(epoch, options.Epochs, batches, batches, epochRecord.TrainLoss, epochRecord.TrainAccuracy, epochRecord.ImagesPerSecond, TimeSpan.Zero, "robust validation"));
                var robust = RobustAccuracy(evaluated, robustValidation, cancellationToken);
                epochRecord = epochRecord with { RobustValidationAccuracy = robust };
                record = KeepIfBest(evaluated, record, epoch, robust);
            }
            record = record with { Epochs = [.. record.Epochs, epochRecord] };
            Checkpoint.Save(runDirectory, network, (OptimizerHelper)optimizer, epoch, record, average?.Network);
            progress?.Report(new TrainingProgress(epoch, options.Epochs, batches, batches, epochRecord.TrainLoss, epochRecord.TrainAccuracy,
                epochRecord.ImagesPerSecond, TimeSpan.Zero, "checkpointed", epochRecord));
        }

        if (options.Keep == "last" && record.SelectedEpoch is not null) record = record with { SelectedEpoch = options.Epochs };
        if (record.SelectedEpoch is { } selected && selected != options.Epochs)
            ModelWeights.Load(evaluated, Safetensors.Parse(File.ReadAllBytes(Path.Combine(runDirectory, BestWeightsFile))));
        if (average is not null)
        {
            // The caller owns the returned network: hand it the average's weights and let the average go with this method.
            average.CopyTo(network);
        }
        progress?.Report(new TrainingProgress(options.Epochs, options.Epochs, 0, 0, 0, 0, 0, TimeSpan.Zero, "testing"));
        testFeatures?.Dispose();
        testLabels?.Dispose();
        (testFeatures, testLabels) = (null, null);
        var test = Evaluator.Evaluate(network, dataset.Test, cancellationToken: cancellationToken);
        record = record with { FinishedUtc = DateTimeOffset.UtcNow, TestAccuracy = test.Accuracy, TestLoss = test.Loss, Privacy = privately?.Record() };
        IO.AtomicFile.WriteAllBytes(Path.Combine(runDirectory, RunRecordFile),
            System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(record, Security.SecurityJsonContext.Default.RunRecord));
        network.eval();
        return new TrainingResult(network, record, test);
    }

    /// <summary>Accuracy under PGD at the defence's eps on held-out images (random start, fixed seed).</summary>
    private double RobustAccuracy(Module<Tensor, Tensor> network, LabeledImages heldOut, CancellationToken cancellationToken)
    {
        var eps = options.DefenseEpsilon;
        var attack = new Pgd(new PgdOptions(eps, 2.5 * eps / options.RobustValidationSteps, options.RobustValidationSteps, Seed: options.Seed));
        using var classifier = new NetworkClassifier(network);
        return AttackEvaluator.Run(classifier, heldOut, [attack], cancellationToken: cancellationToken).Report.RobustAccuracy;
    }

    /// <summary>Saves the weights when robust validation accuracy is the best so far; notes a collapse.</summary>
    private RunRecord KeepIfBest(Module<Tensor, Tensor> network, RunRecord record, int epoch, double robust)
    {
        var (updated, isBest) = SelectByRobustness(record, epoch, robust);
        if (isBest) IO.AtomicFile.WriteAllBytes(Path.Combine(runDirectory, BestWeightsFile), Safetensors.Serialize(ModelWeights.Export(network)));
        return updated;
    }

    /// <summary>The checkpoint policy: an epoch is kept when its robust accuracy beats every earlier one; a fall of more than <see cref="CollapseThreshold"/> below the best is recorded as a collapse.</summary>
    internal static (RunRecord Record, bool IsBest) SelectByRobustness(RunRecord record, int epoch, double robust)
    {
        var best = record.BestRobustValidationAccuracy;
        if (best is { } b && robust < b - CollapseThreshold)
            record = record with { CollapsedEpochs = [.. record.CollapsedEpochs ?? [], epoch] };
        if (best is null || robust > best)
            return (record with { SelectedEpoch = epoch, BestRobustValidationAccuracy = robust }, true);
        return (record, false);
    }

    /// <summary>The defence's eps at a fractional epoch position: ramped linearly over the first epochs when asked.</summary>
    internal double EpsilonAt(double position) =>
        options.EpsilonRampEpochs == 0 ? options.DefenseEpsilon : options.DefenseEpsilon * Math.Min(1, position / options.EpsilonRampEpochs);

    private EpochRecord RunEpoch(Module<Tensor, Tensor> network, WeightAverage? average, optim.Optimizer optimizer, ITrainingObjective objective, Tensor images, Tensor labels, int epoch, int batches,
        LabeledImages? validation, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        // Seeds derive from (seed, epoch) only, so resuming at an epoch boundary replays the same stream.
        manual_seed(options.Seed * 1000L + epoch);
        var order = Enumerable.Range(0, (int)images.shape[0]).Select(i => (long)i).ToArray();
        new SeededRandom(options.Seed * 1000 + epoch).Shuffle(order);
        using var permutation = tensor(order, ScalarType.Int64);

        network.train();
        var stopwatch = Stopwatch.StartNew();
        double lossSum = 0;
        long correct = 0, seen = 0;
        var learningRate = options.LearningRate;
        var epsilon = 0.0;
        for (var batch = 0; batch < batches; batch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var position = epoch - 1 + (double)batch / batches;
            learningRate = LearningRateAt(position, epoch);
            epsilon = options.Defense == "none" ? 0 : EpsilonAt(position);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;

            using var scope = NewDisposeScope();
            var start = batch * options.BatchSize;
            var length = Math.Min(options.BatchSize, order.Length - start);
            var indices = permutation.narrow(0, start, length);
            var x = images.index_select(0, indices);
            if (options.AugmentShift is { } shift) x = ImageAugmentation.Shift(x, shift);
            var y = labels.index_select(0, indices);
            optimizer.zero_grad();
            var (loss, logits) = objective.Compute(network, x, y, epsilon, unchecked(options.Seed * 1_000_003 + epoch * 10_007 + batch));
            loss.backward();
            optimizer.step();
            average?.Update(network, (long)(epoch - 1) * batches + batch);

            lossSum += loss.item<float>() * length;
            correct += logits.argmax(1).eq(y).sum().item<long>();
            seen += length;
            if (progress is not null && (batch % 10 == 0 || batch == batches - 1))
            {
                var rate = seen / stopwatch.Elapsed.TotalSeconds;
                var remainingImages = (double)(order.Length - seen) + (options.Epochs - epoch) * (double)order.Length;
                progress.Report(new TrainingProgress(epoch, options.Epochs, batch + 1, batches, lossSum / seen, (double)correct / seen, rate,
                    TimeSpan.FromSeconds(remainingImages / Math.Max(rate, 1)), "training"));
            }
        }
        return FinishEpoch(network, average, epoch, batches, learningRate, lossSum, correct, seen, stopwatch.Elapsed.TotalSeconds, validation, progress, cancellationToken)
            with { DefenseEpsilon = epsilon };
    }

    /// <summary>
    /// One DP-SGD epoch: <see cref="PrivateTraining.StepsPerEpoch"/> steps, each on a fresh Poisson sample. The sampler and the noise
    /// are seeded from (seed, epoch), so a resumed run computes what an uninterrupted one would (unless the noise is secure).
    /// </summary>
    private EpochRecord RunPrivateEpoch(PrivateTraining privately, Module<Tensor, Tensor> network, WeightAverage? average, optim.Optimizer optimizer,
        Tensor images, Tensor labels, bool featureInputs, int epoch, LabeledImages? validation, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var sampler = privately.Mechanism.NewSampler(options.Seed * 1000 + epoch);
        privately.Mechanism.SeedNoise(options.Seed * 1_000_003L + epoch);
        var parameters = network.parameters().ToList();
        var steps = privately.StepsPerEpoch;
        network.train();
        var stopwatch = Stopwatch.StartNew();
        double lossSum = 0;
        long correct = 0, seen = 0;
        var learningRate = options.LearningRate;
        for (var step = 0; step < steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            learningRate = LearningRateAt(epoch - 1 + (double)step / steps, epoch);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
            var (loss, right, count) = privately.Step(network, optimizer, parameters, images, labels, sampler, featureInputs);
            average?.Update(network, (long)(epoch - 1) * steps + step);
            lossSum += loss;
            correct += right;
            seen += count;
            if (progress is not null && (step % 10 == 0 || step == steps - 1))
            {
                var rate = seen / stopwatch.Elapsed.TotalSeconds;
                var remainingImages = (steps - step - 1 + (options.Epochs - epoch) * (double)steps) * privately.SampleRate * privately.TrainImages;
                progress.Report(new TrainingProgress(epoch, options.Epochs, step + 1, steps, lossSum / Math.Max(seen, 1), (double)correct / Math.Max(seen, 1), rate,
                    TimeSpan.FromSeconds(remainingImages / Math.Max(rate, 1)), "training (DP-SGD)"));
            }
        }
        return FinishEpoch(network, average, epoch, steps, learningRate, lossSum, correct, Math.Max(seen, 1), stopwatch.Elapsed.TotalSeconds, validation, progress, cancellationToken)
            with { PrivacyEpsilon = privately.EpsilonSpent };
    }

    /// <summary>Validates (or tests, without a validation set) the epoch's weights and records the epoch.</summary>
    private EpochRecord FinishEpoch(Module<Tensor, Tensor> network, WeightAverage? average, int epoch, int batches, double learningRate, double lossSum, long correct, long seen,
        double seconds, LabeledImages? validation, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        progress?.Report(new TrainingProgress(epoch, options.Epochs, batches, batches, lossSum / seen, (double)correct / seen, seen / seconds, TimeSpan.Zero,
            validation is null ? "testing" : "validating"));
        var evaluated = average?.Network ?? network;
        double? validationAccuracy = validation is null ? null : Evaluator.Evaluate(evaluated, validation, cancellationToken: cancellationToken).Accuracy;
        double? testAccuracy = validation is null && testEachEpoch ? TestAccuracy(evaluated, cancellationToken) : null;
        return new EpochRecord(epoch, learningRate, lossSum / seen, (double)correct / seen, validationAccuracy, testAccuracy, seconds, seen / seconds);
    }

    /// <summary>Test accuracy after an epoch; a network with a fixed first stage is scored on the test set's features, computed once.</summary>
    private double TestAccuracy(Module<Tensor, Tensor> network, CancellationToken cancellationToken)
    {
        if (network is not IFixedFeatureNetwork fixedStage) return Evaluator.Evaluate(network, dataset.Test, cancellationToken: cancellationToken).Accuracy;
        if (testFeatures is null)
        {
            using var testImages = dataset.Test.ImagesTensor();
            testFeatures = FixedFeatures.Of(fixedStage, testImages, cancellationToken: cancellationToken);
            testLabels = dataset.Test.LabelsTensor();
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var wasTraining = network.training;
        network.eval();
        var correct = fixedStage.ForwardFromFeatures(testFeatures).argmax(1).eq(testLabels!).sum().item<long>();
        if (wasTraining) network.train();
        return (double)correct / dataset.Test.Count;
    }

    /// <summary>Learning rate at a fractional epoch position (0 = start of training).</summary>
    internal double LearningRateAt(double position, int epoch) => options.Schedule switch
    {
        "constant" => options.LearningRate,
        "step" => options.LearningRate * Math.Pow(options.StepGamma, epoch - 1),
        "cosine" => options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * position / options.Epochs)),
        "onecycle" => OneCycle(position / options.Epochs),
        _ => throw new InvalidOperationException($"unknown schedule {options.Schedule}"),
    };

    // Linear warm-up over the first 20% to the peak, then cosine decay to zero.
    private double OneCycle(double fraction) => fraction < 0.2
        ? options.LearningRate * (0.04 + 0.96 * fraction / 0.2)
        : options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * (fraction - 0.2) / 0.8));

    private optim.Optimizer CreateOptimizer(Module<Tensor, Tensor> network) => options.Optimizer switch
    {
        "adam" => optim.Adam(network.parameters(), options.LearningRate, weight_decay: options.WeightDecay),
        "adamw" => optim.AdamW(network.parameters(), options.LearningRate, weight_decay: options.WeightDecay),
        "sgd" => optim.SGD(network.parameters(), options.LearningRate, momentum: 0.9, nesterov: true, weight_decay: options.WeightDecay),
        "adadelta" => optim.Adadelta(network.parameters(), options.LearningRate, weight_decay: options.WeightDecay),
        _ => throw new ArgumentException($"unknown optimizer {options.Optimizer}"),
    };

    /// <summary>
    /// The images a run trains on and the ones it holds out for validation, as <paramref name="options"/> decide them (seeded): what
    /// membership inference needs to know which images are a model's members.
    /// </summary>
    public static (LabeledImages Train, LabeledImages? Validation) Split(TrainingOptions options, Dataset dataset)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(dataset);
        var all = dataset.Train;
        LabeledImages? validation = null;
        if (options.ValidationSize > 0)
        {
            if (options.ValidationSize >= all.Count) throw new ArgumentException($"validation size {options.ValidationSize} leaves no training images (the set holds {all.Count})");
            (all, validation) = all.Split(options.ValidationSize, options.Seed);
        }
        if (options.TrainSubset is { } subset)
        {
            if (subset > all.Count) throw new ArgumentException($"training subset {subset} is larger than the {all.Count} training images available");
            var order = Enumerable.Range(0, all.Count).ToArray();
            new SeededRandom(options.Seed).Shuffle(order);
            var chosen = order[..subset];
            Array.Sort(chosen);
            all = all.Select(chosen);
        }
        return (all, validation);
    }

    private RunRecord NewRecord(int trainImages, int validationImages) => new(
        $"{DateTimeOffset.UtcNow:yyyyMMdd-HHmmss}-{Path.GetFileName(Path.GetFullPath(runDirectory))}",
        options, dataset.Name, dataset.Digests, trainImages, validationImages, CodeVersion.Current(),
        MachineInfo.Current(get_num_threads()), DateTimeOffset.UtcNow, null, [], 0, null, null);
}
