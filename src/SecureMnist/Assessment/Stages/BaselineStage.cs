using SecureMnist.Reporting;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>The seeds' CNN, trained on the profile's subset and schedule, signed.</summary>
public sealed class BaselineStage : AssessmentStage
{
    public static readonly MetricKey CleanAccuracy = new("baseline.clean_accuracy");
    public static readonly MetricKey TrainImages = new("baseline.train_images");
    public static readonly MetricKey Epochs = new("baseline.epochs");
    public static readonly MetricKey TrainingSeconds = new("baseline.training_seconds");

    public override string Name => "baseline";
    public override IReadOnlyList<string> DependsOn => ["data"];
    public override IReadOnlyList<MetricKey> MetricKeys => [CleanAccuracy, TrainImages, Epochs, TrainingSeconds];
    public override object Inputs(StageContext context) => new { context.Profile.TrainSubset, context.Profile.Epochs, context.Profile.BaselineAugmentShift };

    public override StageOutput Run(StageContext context, string directory)
    {
        var profile = context.Profile;
        var training = new TrainingOptions { TrainSubset = profile.TrainSubset, Epochs = profile.Epochs, AugmentShift = profile.BaselineAugmentShift };
        var trained = context.Train(training, context.Mnist, directory, "baseline");
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
            [CleanAccuracy.Name] = Metric.Proportion(trained.Training.Test.Accuracy, context.Mnist.Test.Count, "baseline clean test accuracy"),
            [TrainImages.Name] = Metric.Count(trained.Training.Record.TrainImages, "baseline training images"),
            [Epochs.Name] = Metric.Count(training.Epochs, "baseline epochs"),
            [TrainingSeconds.Name] = new(trained.Training.Record.Epochs.Sum(e => e.Seconds), "seconds", "baseline training time"),
        }, new Dictionary<string, string> { ["model"] = trained.PackageDirectory, ["confusion"] = confusion, ["training_curve"] = curve });
    }
}
