using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;

namespace SecureMnist.Tests.Attacks;

public sealed class AdversarialSetTests(TrainedLinearModel fixture) : IClassFixture<TrainedLinearModel>, IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void Saved_examples_load_back_exactly_and_keep_their_predictions()
    {
        var data = fixture.Test.Take(50);
        using var classifier = new NetworkClassifier(fixture.Network);
        var run = AttackEvaluator.Run(classifier, data, [new Pgd(new PgdOptions(0.2, 0.02, 10))]);
        var info = new AdversarialSetInfo("model", "digest", "mnist", data.Count, ["pgd"], run.Report.CleanAccuracy, run.Report.RobustAccuracy, DateTimeOffset.UtcNow);
        AdversarialSet.Save(directory, run, info);

        var (images, labels, loadedInfo) = AdversarialSet.Load(directory);
        Assert.Equal(run.Adversarial, images);
        Assert.Equal(data.Labels, labels);
        Assert.Equal(info.RobustAccuracy, loadedInfo.RobustAccuracy);
        Assert.Equal(run.AdversarialPredictions.Select(p => (byte)p), IdxReader.ReadLabels(Path.Combine(directory, AdversarialSet.PredictionsFile)));

        using var reloaded = TorchSharp.torch.tensor(images, [data.Count, 1, 28, 28]);
        using var noGrad = TorchSharp.torch.no_grad();
        using var predictions = classifier.Logits(reloaded).argmax(1);
        Assert.Equal(run.AdversarialPredictions.Select(p => (long)p), predictions.data<long>().ToArray());
    }

    [Fact]
    public void Float_images_outside_0_to_1_are_refused()
    {
        var path = Path.Combine(directory, "bad-idx3-float");
        IdxWriter.WriteFloatImages(path, Enumerable.Repeat(1.5f, 28 * 28).ToArray(), 1, 28, 28);
        var error = Assert.Throws<IdxFormatException>(() => IdxReader.ReadImagesAsFloat(path));
        Assert.Contains("outside [0, 1]", error.Message, StringComparison.Ordinal);
    }
}
