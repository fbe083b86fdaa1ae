using SecureMnist.Modeling;
using SecureMnist.Privacy;
using SecureMnist.Security;
using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Privacy;

public sealed class PrivateTrainingTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static TrainingOptions Private(double? targetEpsilon = 3, double? noiseMultiplier = null, int epochs = 2) => new()
    {
        Architecture = Architectures.DpCnn, TrainSubset = 1000, Epochs = epochs, BatchSize = 50, Optimizer = "sgd", LearningRate = 0.5, Schedule = "constant", Seed = 3,
        Privacy = new PrivacyOptions { TargetEpsilon = targetEpsilon, NoiseMultiplier = noiseMultiplier, Delta = 1e-5, MaxGradientNorm = 0.1 },
    };

    [Fact]
    public void The_plan_spends_at_most_the_budget_and_no_more_than_a_hundredth_below_it()
    {
        // Tramèr and Boneh's MNIST setting: batch 512 of 60,000 for 40 epochs at epsilon 3, delta 1e-5.
        var plan = PrivateTraining.Plan(new PrivacyOptions { TargetEpsilon = 3, Delta = 1e-5 }, 60_000, 512, 40);
        Assert.Equal(118, plan.StepsPerEpoch);
        Assert.Equal(512.0 / 60_000, plan.SampleRate, 12);
        var accountant = new RdpAccountant();
        accountant.Step(plan.NoiseMultiplier, plan.SampleRate, plan.TotalSteps);
        Assert.InRange(accountant.Epsilon(1e-5).Epsilon, 2.99, 3.0);
        // A weak delta (not below 1/n) is refused, as is a batch that is the whole set (no sampling, no amplification).
        Assert.Throws<ArgumentException>(() => PrivateTraining.Plan(new PrivacyOptions { TargetEpsilon = 3, Delta = 1e-3 }, 1000, 50, 1));
        Assert.Throws<ArgumentException>(() => PrivateTraining.Plan(new PrivacyOptions { TargetEpsilon = 3 }, 1000, 1000, 1));
    }

    [Fact]
    public void Settings_that_cannot_be_trained_privately_are_refused_with_the_reason()
    {
        Assert.Contains("per-example gradients", Assert.Throws<ArgumentException>(() => (Private() with { Architecture = Architectures.WideCnn }).Validate()).Message);
        Assert.Contains("adversarial", Assert.Throws<ArgumentException>(() => (Private() with { Defense = "pgd" }).Validate()).Message);
        Assert.Contains("not both", Assert.Throws<ArgumentException>(() => Private(targetEpsilon: 3, noiseMultiplier: 1).Validate()).Message);
        Assert.Contains("not both", Assert.Throws<ArgumentException>(() => Private(targetEpsilon: null, noiseMultiplier: null).Validate()).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => (Private() with { Privacy = new PrivacyOptions { TargetEpsilon = 3, MaxGradientNorm = 0 } }).Validate());
    }

    [Fact]
    public void A_private_run_learns_records_its_guarantee_and_the_guarantee_is_checked_on_verification()
    {
        var options = Private();
        var result = new Trainer(options, TestPaths.Mnist(testImages: 1000), Path.Combine(directory, "run")).Run(resume: false);
        using var _ = result.Network;
        var privacy = result.Record.Privacy!;
        Assert.Equal(2 * 20, privacy.Steps); // 20 steps per epoch at q = 50 / 1000
        Assert.Equal(0.05, privacy.SampleRate, 12);
        Assert.InRange(privacy.Epsilon, 2.9, 3.0);
        Assert.Equal(privacy.Epsilon, privacy.RecomputedEpsilon(), 9);
        Assert.Equal(privacy.Epsilon, result.Record.Epochs[^1].PrivacyEpsilon!.Value, 9);
        Assert.True(result.Record.Epochs[0].PrivacyEpsilon < privacy.Epsilon);
        Assert.True(result.Test.Accuracy > 0.3, $"test accuracy {result.Test.Accuracy:P1} after 40 private steps on 1,000 images"); // chance is 10%

        Assert.Equal(CheckStatus.Passed, ProvenanceVerifier.PrivacyCheck(privacy, options.Privacy).Status);
        // A record that claims less privacy loss than its settings spend, or more than its budget, fails.
        Assert.Equal(CheckStatus.Failed, ProvenanceVerifier.PrivacyCheck(privacy with { Epsilon = privacy.Epsilon / 2 }, options.Privacy).Status);
        Assert.Equal(CheckStatus.Failed, ProvenanceVerifier.PrivacyCheck(privacy with { Steps = privacy.Steps * 3 }, options.Privacy).Status);
    }

    [Fact]
    public void The_noise_reaches_the_weights()
    {
        // The control: noise reaches the weights. Two runs that differ only in the noise multiplier end with different weights,
        // and the noisier one is further from the (nearly) noiseless one than the seeded stream alone would put it.
        var mnist = TestPaths.Mnist(testImages: 100);
        var quiet = new Trainer(Private(targetEpsilon: null, noiseMultiplier: 1e-6, epochs: 1), mnist, Path.Combine(directory, "quiet")).Run(resume: false);
        var noisy = new Trainer(Private(targetEpsilon: null, noiseMultiplier: 5, epochs: 1), mnist, Path.Combine(directory, "noisy")).Run(resume: false);
        using (quiet.Network)
        using (noisy.Network)
        {
            var distance = quiet.Network.parameters().Zip(noisy.Network.parameters()).Sum(p => (p.First - p.Second).square().sum().item<float>());
            // 20 steps of noise sigma C / (q n) = 5 * 0.1 / 50 = 0.01 per coordinate, times lr 0.5, over 26,010 parameters, with momentum.
            Assert.True(distance > 20 * 26_010 * 0.005 * 0.005, $"squared distance {distance:G3}");
        }
    }
}
