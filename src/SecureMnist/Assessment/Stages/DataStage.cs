using System.Text.Json;

namespace SecureMnist.Assessment;

/// <summary>The MNIST files, verified against their SHA-256 manifest.</summary>
public sealed class DataStage : AssessmentStage
{
    public static readonly MetricKey TrainImages = new("data.train_images");
    public static readonly MetricKey TestImages = new("data.test_images");

    public override string Name => "data";
    public override IReadOnlyList<MetricKey> MetricKeys => [TrainImages, TestImages];
    public override object Inputs(StageContext context) => new { context.Mnist.Digests };

    public override StageOutput Run(StageContext context, string directory) => new(
        new Dictionary<string, Metric>
        {
            [TrainImages.Name] = Metric.Count(context.Mnist.Train.Count, "MNIST training images, SHA-256 verified"),
            [TestImages.Name] = Metric.Count(context.Mnist.Test.Count, "MNIST test images, SHA-256 verified"),
        },
        new Dictionary<string, string>(), JsonSerializer.SerializeToNode(context.Mnist.Digests));
}
