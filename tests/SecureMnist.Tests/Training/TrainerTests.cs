using SecureMnist.Modeling;
using SecureMnist.Security;
using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static TrainingOptions Small(int epochs = 1) => new()
    {
        TrainSubset = 2000, Epochs = epochs, LearningRate = 3e-3, Schedule = "constant", BatchSize = 64, Seed = 5,
    };

    [Fact]
    public void Training_on_2000_images_for_one_epoch_learns()
    {
        var result = new Trainer(Small(), TestPaths.Mnist(testImages: 2000), Path.Combine(directory, "run")).Run(resume: false);
        using var _ = result.Network;
        Assert.True(result.Test.Accuracy > 0.85, $"test accuracy {result.Test.Accuracy:P2} after one epoch on 2,000 images");
        Assert.Equal(2000, result.Record.TrainImages);
        Assert.Single(result.Record.Epochs);
        Assert.Equal(result.Test.Accuracy, result.Record.TestAccuracy);
        Assert.Equal(4, result.Record.DatasetDigests.Count);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData(2, null)]
    [InlineData(null, 0.99)]
    public void An_interrupted_run_resumes_and_ends_where_an_uninterrupted_run_ends(int? augmentShift, double? weightAverage)
    {
        var mnist = TestPaths.Mnist(testImages: 2000);
        var options = Small(epochs: 2) with { TrainSubset = 500, AugmentShift = augmentShift, WeightAverageDecay = weightAverage };

        var straight = new Trainer(options, mnist, Path.Combine(directory, "straight")).Run(resume: false);

        var interruptedDirectory = Path.Combine(directory, "interrupted");
        using var cancellation = new CancellationTokenSource();
        var progress = new InlineProgress(p => { if (p.Epoch == 2 && p.Batch > 3) cancellation.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(options, mnist, interruptedDirectory).Run(resume: false, progress, cancellation.Token));
        Assert.Equal(1, Checkpoint.TryReadState(interruptedDirectory)!.CompletedEpochs);

        var resumed = new Trainer(options, mnist, interruptedDirectory).Run(resume: true);
        using (straight.Network)
        using (resumed.Network)
        {
            Assert.Equal(1, resumed.Record.Resumes);
            Assert.Equal(augmentShift, resumed.Record.Options.AugmentShift);
            Assert.Equal(2, resumed.Record.Epochs.Count);
            var expected = ModelWeights.Export(straight.Network);
            var actual = ModelWeights.Export(resumed.Network);
            Assert.Equal(expected.Select(t => t.Data), actual.Select(t => t.Data));
            if (weightAverage is not null)
            {
                // What the run returns (and packages) is the average, not the last raw weights.
                var raw = Weights(Path.Combine(interruptedDirectory, $"epoch-002.{Checkpoint.WeightsFile}"));
                var average = Weights(Path.Combine(interruptedDirectory, $"epoch-002.{Checkpoint.AverageFile}"));
                Assert.Equal(average, actual.Select(t => t.Data));
                Assert.NotEqual(raw, actual.Select(t => t.Data));
            }
        }
    }

    private static List<byte[]> Weights(string file)
    {
        using var network = Architectures.Create(Architectures.Default);
        ModelWeights.Load(network, Safetensors.Parse(File.ReadAllBytes(file)));
        return ModelWeights.Export(network).Select(t => t.Data.ToArray()).ToList();
    }

    [Fact]
    public void The_weight_average_follows_its_definition()
    {
        using var first = Architectures.Create(Architectures.LinearSoftmax);
        using var second = Architectures.Create(Architectures.LinearSoftmax);
        using var average = new WeightAverage(Architectures.LinearSoftmax, first, decay: 0.9);
        Assert.Equal(0.1, average.DecayAt(0), 9); // (1 + 0) / (10 + 0): the random start fades fast
        Assert.Equal(0.9, average.DecayAt(1000), 9);
        var start = first.parameters().First().clone();
        var target = second.parameters().First();
        average.Update(second, step: 1000);
        var expected = 0.9 * start + 0.1 * target;
        Assert.True(allclose(average.Network.parameters().First(), expected, rtol: 1e-5, atol: 1e-6));
        Assert.True(allclose(first.parameters().First(), start)); // the source is read, never written
        using var copy = Architectures.Create(Architectures.LinearSoftmax);
        average.CopyTo(copy);
        Assert.True(allclose(copy.parameters().First(), expected, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void A_finished_run_is_not_overwritten_without_resume()
    {
        var runDirectory = Path.Combine(directory, "run");
        var options = Small() with { TrainSubset = 256 };
        new Trainer(options, TestPaths.Mnist(testImages: 2000), runDirectory).Run(resume: false).Network.Dispose();
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(options, TestPaths.Mnist(testImages: 2000), runDirectory).Run(resume: false));
        Assert.Contains("--resume", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Resuming_with_different_options_is_refused()
    {
        var runDirectory = Path.Combine(directory, "run");
        var options = Small() with { TrainSubset = 256 };
        new Trainer(options, TestPaths.Mnist(testImages: 2000), runDirectory).Run(resume: false).Network.Dispose();
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(options with { Seed = 6 }, TestPaths.Mnist(testImages: 2000), runDirectory).Run(resume: true));
        Assert.Contains("different options", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cosine", 0.0, 1e-3)]
    [InlineData("cosine", 5.0, 5e-4)]
    [InlineData("onecycle", 0.0, 4e-5)]
    [InlineData("onecycle", 2.0, 1e-3)]
    public void Learning_rate_schedules_follow_their_definition(string schedule, double position, double expected)
    {
        var trainer = new Trainer(new TrainingOptions { Schedule = schedule, Epochs = 10, LearningRate = 1e-3 }, TestPaths.Mnist(testImages: 2000), directory);
        Assert.Equal(expected, trainer.LearningRateAt(position, (int)position + 1), 9);
    }

    [Theory]
    [InlineData("Epochs", 0)]
    [InlineData("BatchSize", 0)]
    [InlineData("LearningRate", -1.0)]
    [InlineData("Optimizer", "rmsprop")]
    [InlineData("Architecture", "resnet")]
    [InlineData("Schedule", "sometimes")]
    [InlineData("AugmentShift", 0)]
    [InlineData("AugmentShift", 9)]
    [InlineData("WeightAverageDecay", 1.0)]
    [InlineData("WeightAverageDecay", 0.0)]
    [InlineData("LateSteps", 40)]
    [InlineData("LateEpochs", 2)]
    [InlineData("LateEpochs", 13)]
    [InlineData("LateOnFgsm", 2)]
    public void Bad_options_are_refused(string property, object value)
    {
        var options = property switch
        {
            "WeightAverageDecay" => new TrainingOptions { WeightAverageDecay = (double)value },
            "LateSteps" => new TrainingOptions { Defense = "trades", LateSteps = (int)value },
            "LateEpochs" => new TrainingOptions { Defense = "trades", LateSteps = (int)value == 13 ? 40 : null, LateEpochs = (int)value },
            "LateOnFgsm" => new TrainingOptions { Defense = "fgsm", LateSteps = 40, LateEpochs = (int)value },
            "Epochs" => new TrainingOptions { Epochs = (int)value },
            "BatchSize" => new TrainingOptions { BatchSize = (int)value },
            "LearningRate" => new TrainingOptions { LearningRate = (double)value },
            "Optimizer" => new TrainingOptions { Optimizer = (string)value },
            "Architecture" => new TrainingOptions { Architecture = (string)value },
            "AugmentShift" => new TrainingOptions { AugmentShift = (int)value },
            _ => new TrainingOptions { Schedule = (string)value },
        };
        Assert.ThrowsAny<ArgumentException>(options.Validate);
    }

    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
