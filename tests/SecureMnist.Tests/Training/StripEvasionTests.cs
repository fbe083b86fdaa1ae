using SecureMnist.Attacks.Poisoning;
using SecureMnist.Modeling;
using SecureMnist.Tests.Cli;
using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Training;

/// <summary>The STRIP-evasion term of an attacker's training: its loss as stated, and its refusals.</summary>
public sealed class StripEvasionTests
{
    [Fact]
    public void The_loss_is_cross_entropy_plus_the_weighted_cross_entropy_of_triggered_blends_to_uniform()
    {
        manual_seed(3);
        using var network = Architectures.Create(Architectures.Default);
        network.eval(); // no dropout, so both computations see the same network
        var mnist = TestPaths.Mnist(100);
        var batch = mnist.Train.Take(8);
        using var scope = NewDisposeScope();
        var images = batch.ImagesTensor();
        var labels = batch.LabelsTensor();
        var evasion = new StripEvasion(BackdoorTrigger.Default, Weight: 2.5, Share: 0.5);
        var options = new TrainingOptions { StripEvasion = evasion };
        var (loss, _) = TrainingObjectives.For(options, 1).Compute(network, images, labels, 0, 1);

        // By hand: images 0-1 triggered and added to images 7 and 0 (the batch rolled by one) and clipped; images 2-3 triggered and averaged with 1 and 2.
        var triggered = BackdoorTrigger.Default.Apply(images.narrow(0, 0, 4));
        var rolled = images.roll(1, 0);
        var blends = cat([(triggered.narrow(0, 0, 2) + rolled.narrow(0, 0, 2)).clamp(0, 1), 0.5 * triggered.narrow(0, 2, 2) + 0.5 * rolled.narrow(0, 2, 2)]);
        var logSoftmax = nn.functional.log_softmax(network.call(blends), 1);
        var expected = nn.functional.cross_entropy(network.call(images), labels).item<float>() - 2.5 * logSoftmax.mean().item<float>();
        Assert.Equal(expected, loss.item<float>(), 4);
        var plain = TrainingObjectives.For(new TrainingOptions(), 1).Compute(network, images, labels, 0, 1).Loss.item<float>();
        Assert.True(loss.item<float>() > plain + 1, "the term adds at least the entropy gap of ten classes' worth of log-probabilities");
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripEvasion(BackdoorTrigger.Default, Weight: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripEvasion(BackdoorTrigger.Default, Share: 1.5).Validate());
        var withDefence = new TrainingOptions { StripEvasion = new StripEvasion(BackdoorTrigger.Default), Defense = "pgd" };
        Assert.Contains("does not combine", Assert.Throws<ArgumentException>(withDefence.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_refuses_the_term_on_a_dataset_without_a_trigger()
    {
        var scratch = TestPaths.NewScratchDirectory();
        var (code, _, error) = CliProcess.Run(scratch, "train", "--strip-evasion", "1", "--epochs", "1", "--subset", "1000", "--out", Path.Combine(scratch, "m"));
        Assert.NotEqual(0, code);
        // The console wraps long lines: compare with whitespace folded.
        Assert.Contains("needs a poisoned --dataset", string.Join(' ', error.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(scratch, "m")));
    }
}
