using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.Training;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Tests.Defenses;

/// <summary>A small dirty-label backdoor experiment, trained once: 20,000 images, 0.5% poisoned, 12 epochs.</summary>
public sealed class SmallBackdoorRun : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public SmallBackdoorRun()
    {
        var mnist = TestPaths.Mnist();
        Clean = mnist with { Train = mnist.Train.Take(20000), Test = mnist.Test.Take(3000) };
        Poisoned = DataPoisoner.Poison(Clean, new PoisonOptions(Count: 100));
        Options = new TrainingOptions { Epochs = 12, Seed = 2 };
        Network = Train(Poisoned.Train, "poisoned");
        Before = BackdoorEvaluator.Evaluate(Network, Clean.Test, Trigger, 7);
        Reference = mnist.Test.Select([.. Enumerable.Range(3000, 7000)]);
    }

    /// <summary>Trusted clean images for the k-NN reference vote: the test images the run never measures on.</summary>
    public LabeledImages Reference { get; }

    public Dataset Clean { get; }
    public PoisonedTrainingSet Poisoned { get; }
    public TrainingOptions Options { get; }
    public Module<Tensor, Tensor> Network { get; }
    public BackdoorReport Before { get; }
    public BackdoorTrigger Trigger => Poisoned.Manifest.Trigger!;

    public Module<Tensor, Tensor> Train(LabeledImages train, string name) =>
        new Trainer(Options, Clean with { Train = train }, Path.Combine(directory, name)).Run(resume: false).Network;

    public void Dispose()
    {
        Network.Dispose();
        Directory.Delete(directory, recursive: true);
    }
}

public sealed class PoisonDefenceTests(SmallBackdoorRun run) : IClassFixture<SmallBackdoorRun>
{
    [Fact]
    public void The_backdoor_works_on_the_poisoned_model()
    {
        Assert.True(run.Before.AttackSuccessRate > 0.8, $"ASR {run.Before.AttackSuccessRate:P1}");
        Assert.True(run.Before.CleanAccuracy > 0.9, $"clean accuracy {run.Before.CleanAccuracy:P1}");
    }

    [Fact]
    public void Spectre_with_its_defaults_flags_the_poison_and_nothing_else()
    {
        // Here the poison is 4.8% of the 7s. With a whitening trim below that share plus the class's natural outliers
        // (0.1 was the old default) the poison shapes the covariance estimate and no class looks suspicious.
        var report = PoisonDetector.Detect(run.Network, run.Poisoned.Train, new PoisonDetectionOptions(PoisonDetectionMethod.Spectre))
            .ScoredAgainst(run.Poisoned.Manifest, run.Poisoned.Train.Labels);
        Assert.Equal([7], report.Classes.Where(c => c.Suspicious).Select(c => c.Label));
        Assert.True(report.Score!.Recall >= 0.9, $"recall {report.Score.Recall:P1}");
        Assert.True(report.Score.Precision >= 0.9, $"precision {report.Score.Precision:P1}");

        var scratch = TestPaths.NewScratchDirectory();
        try
        {
            var chart = Path.Combine(scratch, "detection.png");
            PoisonDetector.Plot(report, chart);
            using var picture = SkiaSharp.SKBitmap.Decode(chart);
            Assert.Equal((900, 560), (picture.Width, picture.Height));
            Assert.Contains(picture.Pixels, p => p == new SkiaSharp.SKColor(214, 39, 40)); // the poisoned class's bar is drawn red
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
        Assert.True(report.Score.CleanFlaggedRateInTargetClass <= 0.01, $"clean 7s flagged {report.Score.CleanFlaggedRateInTargetClass:P2}");
    }

    [Fact]
    public void Knn_consistency_with_its_defaults_finds_the_relabelled_digits_from_the_pixels_alone()
    {
        // The default reads no model: the poisoned 7s are digits of other classes, and their nearest training images say so.
        var report = PoisonDetector.Detect(run.Network, run.Poisoned.Train, new PoisonDetectionOptions())
            .ScoredAgainst(run.Poisoned.Manifest, run.Poisoned.Train.Labels);
        Assert.Equal(PoisonDetectionMethod.KnnConsistency, report.Options.Method);
        // Measured on this draw: recall 97%, 0.91% of the clean 7s and 0.93% of all clean samples flagged (at the old default of 5 of 50
        // agreeing neighbours: 94%, 1.29% and 1.50%, which these bounds refuse). The misses are source digits that look like 7s; the false
        // alarms are ambiguous or mislabelled digits in every class, a share of any clean MNIST draw.
        Assert.True(report.Score!.Recall >= 0.93, $"recall {report.Score.Recall:P1}");
        Assert.True(report.Score.CleanFlaggedRateInTargetClass <= 0.012, $"clean 7s flagged {report.Score.CleanFlaggedRateInTargetClass:P2}");
        Assert.True(report.Score.CleanFlaggedRateOverall <= 0.012, $"clean samples flagged {report.Score.CleanFlaggedRateOverall:P2}");
    }

    [Fact]
    public void Knn_union_finds_more_of_the_relabelled_digits_than_either_vote_and_pays_with_both_votes_false_alarms()
    {
        var defaults = new PoisonDetectionOptions(PoisonDetectionMethod.KnnUnion);
        Assert.Throws<ArgumentException>(() => PoisonDetector.Detect(run.Network, run.Poisoned.Train, defaults)); // no trusted images, no vote
        PoisonDetectionScore Score(PoisonDetectionOptions options) => PoisonDetector.Detect(run.Network, run.Poisoned.Train, options, reference: run.Reference)
            .ScoredAgainst(run.Poisoned.Manifest, run.Poisoned.Train.Labels).Score!;
        var union = Score(defaults);
        var training = Score(defaults with { Method = PoisonDetectionMethod.KnnConsistency });
        var trusted = Score(defaults with { Method = PoisonDetectionMethod.KnnReference });
        var summary = $"union: recall {union.Recall:P1}, clean 7s {union.CleanFlaggedRateInTargetClass:P2}, all clean {union.CleanFlaggedRateOverall:P2}; "
            + $"training vote {training.Recall:P1}, {training.CleanFlaggedRateInTargetClass:P2}; reference vote {trusted.Recall:P1}, {trusted.CleanFlaggedRateInTargetClass:P2}";
        // Measured on this draw (20,000 training images, 7,000 reference images): union recall 99.0% with 1.43% of the clean 7s and 1.57%
        // of all clean samples flagged; the training vote 97.0% (0.91% of clean 7s), the reference vote 91.0% (1.00%). The two votes' false
        // alarms overlap only in part, which is why the union is not the default: it exceeds 1% of the clean target class here.
        Assert.True(union.TruePositives >= Math.Max(training.TruePositives, trusted.TruePositives), summary);
        Assert.True(union.Flagged <= training.Flagged + trusted.Flagged, summary);
        Assert.True(union.CleanFlaggedInTargetClass >= Math.Max(training.CleanFlaggedInTargetClass, trusted.CleanFlaggedInTargetClass), summary);
        Assert.True(union.Recall >= 0.97, summary);
        Assert.True(union.CleanFlaggedRateInTargetClass <= 0.02, summary);
        Assert.True(union.CleanFlaggedRateOverall <= 0.02, summary);
    }

    [Fact]
    public void Spectral_signatures_remove_their_budget_from_every_class_and_find_the_poison_above_chance()
    {
        var report = PoisonDetector.Detect(run.Network, run.Poisoned.Train, new PoisonDetectionOptions(PoisonDetectionMethod.SpectralSignatures, ExpectedFraction: 0.1))
            .ScoredAgainst(run.Poisoned.Manifest, run.Poisoned.Train.Labels);
        Assert.All(report.Classes, c => Assert.Equal(SpectralSignaturesDetector.RemovalCount(c.Samples, 0.1), c.Flagged));
        // Tran et al.'s rule on raw (unwhitened) activations: 15% of the 7s removed, so chance recall is 15%. Measured here: 47%,
        // which is why the default detector whitens first.
        Assert.True(report.Score!.Recall > 2 * 0.15, $"recall {report.Score.Recall:P1}");
    }

    [Fact]
    public void Sanitizing_and_retraining_removes_the_backdoor()
    {
        var detection = PoisonDetector.Detect(run.Network, run.Poisoned.Train, new PoisonDetectionOptions());
        var (sanitized, _) = Sanitizer.Remove(run.Poisoned.Train, detection.Flagged.Select(f => f.Index));
        using var retrained = run.Train(sanitized, "sanitized");
        var after = BackdoorEvaluator.Evaluate(retrained, run.Clean.Test, run.Trigger, 7);
        Assert.True(after.AttackSuccessRate < 0.1, $"ASR after sanitizing {after.AttackSuccessRate:P1} (before {run.Before.AttackSuccessRate:P1})");
        Assert.True(after.CleanAccuracy > run.Before.CleanAccuracy - 0.02, $"clean accuracy {after.CleanAccuracy:P1} vs {run.Before.CleanAccuracy:P1}");
    }

    [Fact]
    public void Strip_flags_triggered_inputs_and_few_clean_ones()
    {
        var report = StripEvaluation.Run(run.Network, run.Clean.Test, run.Trigger, 7, new StripOptions(Overlays: 16), poolSize: 500, calibrationSize: 1000);
        Assert.True(report.TruePositiveRate >= 0.9, $"TPR {report.TruePositiveRate:P1}");
        Assert.True(report.FalsePositiveRate <= 0.1, $"FPR {report.FalsePositiveRate:P1}");
    }

    [Fact]
    public void Sanitizer_refuses_indices_outside_the_training_set()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Sanitizer.Remove(run.Poisoned.Train, [run.Poisoned.Train.Count]));
        Assert.Contains("outside", error.Message);
    }

    [Fact]
    public void Bad_detection_and_strip_options_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(MaxClusterFraction: 0.5).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(Trim: 0.5).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(MinSeparation: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(ExpectedFraction: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(PeelRounds: -1).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(PeelRounds: 101).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoisonDetectionOptions(KnnSpace: (KnnSpace)7).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripOptions(Overlays: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripOptions(FalsePositiveRate: 1).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new StripOptions(Confidence: 1).Validate());
    }
}
