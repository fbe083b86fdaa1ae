using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>A poisoned copy of the training set, the backdoored model trained on it, and the backdoor measured on the test set.</summary>
public sealed class PoisoningStage : AssessmentStage
{
    public static readonly MetricKey AttackSuccessRate = new("poison.attack_success_rate");
    public static readonly MetricKey CleanAccuracy = new("poison.clean_accuracy");
    public static readonly MetricKey Samples = new("poison.samples");
    public static readonly MetricKey Share = new("poison.share");
    public static readonly MetricKey TriggeredImages = new("poison.triggered_images");
    public static readonly MetricKey TriggeredMissed = new("poison.triggered_missed");
    public static readonly MetricKey WeakestClassSuccess = new("poison.weakest_class_success");

    public override string Name => "poisoning";
    public override IReadOnlyList<string> DependsOn => ["data"];
    public override IReadOnlyList<MetricKey> MetricKeys => [AttackSuccessRate, CleanAccuracy, Samples, Share, TriggeredImages, TriggeredMissed, WeakestClassSuccess];
    public override object Inputs(StageContext context) => new { context.Profile.PoisonCount, context.Profile.PoisonTrigger, context.Profile.PoisonTrainSubset, context.Profile.PoisonEpochs };

    public override StageOutput Run(StageContext context, string directory)
    {
        var dataDirectory = Path.Combine(directory, "data");
        var poisonOptions = new PoisonOptions(PoisonMode.DirtyLabel, context.Profile.PoisonCount, Trigger: context.Profile.PoisonTrigger);
        var mnist = context.Mnist;
        var clean = mnist;
        if (context.Profile.PoisonTrainSubset is { } subset)
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
            clean = new DatasetStore(context.Options.DataRoot).Load(subsetDirectory);
        }
        context.Report($"writing a poisoned copy: {context.Profile.PoisonCount} dirty-label samples of {clean.Train.Count}, target {poisonOptions.TargetClass}");
        var manifest = Directory.Exists(dataDirectory) ? PoisonManifests.TryLoad(dataDirectory)! : DataPoisoner.Write(clean, poisonOptions, dataDirectory);
        var poisoned = new DatasetStore(context.Options.DataRoot).Load(dataDirectory);
        var training = new TrainingOptions { Epochs = context.Profile.PoisonEpochs };
        var trained = context.Train(training, poisoned, directory, "backdoor");
        var backdoor = BackdoorEvaluator.Evaluate(trained.Training.Network, mnist.Test, manifest.Trigger!, manifest.TargetClass);
        var examples = Path.Combine(directory, "backdoor.png");
        BackdoorEvaluator.SaveExamples(trained.Training.Network, mnist.Test, manifest.Trigger!, manifest.TargetClass, examples);
        var perClass = Path.Combine(directory, "backdoor-per-class.png");
        BackdoorEvaluator.PlotPerSourceClass(backdoor, perClass);
        trained.Training.Network.Dispose();
        var weakest = backdoor.PerSourceClass.MinBy(s => s.AttackSuccessRate)!;
        return new(new Dictionary<string, Metric>
        {
            [Samples.Name] = Metric.Count(manifest.Samples.Count, $"poisoned training samples (dirty label; trigger: {manifest.Trigger})"),
            [Share.Name] = Metric.Percent((double)manifest.Samples.Count / manifest.TrainImages, "share of the training set poisoned"),
            [AttackSuccessRate.Name] = Metric.Percent(backdoor.AttackSuccessRate, $"backdoor attack success rate (triggered test images of other classes predicted {manifest.TargetClass})"),
            [TriggeredImages.Name] = Metric.Count(backdoor.TriggeredImages, "triggered test images the success rate counts"),
            [TriggeredMissed.Name] = Metric.Count(backdoor.TriggeredImages - backdoor.PerSourceClass.Sum(s => s.PredictedAsTarget), $"triggered test images not predicted {manifest.TargetClass}"),
            [WeakestClassSuccess.Name] = Metric.Percent(weakest.AttackSuccessRate, $"backdoor success on its weakest source class (class {weakest.SourceClass})"),
            [CleanAccuracy.Name] = Metric.Percent(backdoor.CleanAccuracy, "poisoned model: clean test accuracy"),
        }, new Dictionary<string, string> { ["model"] = trained.PackageDirectory, ["data"] = dataDirectory, ["backdoor_examples"] = examples, ["backdoor_per_class"] = perClass });
    }
}
