using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Tests.Training;

/// <summary>Trains small models once, with and without each defence, for the comparisons below.</summary>
public sealed class SmallDefenceRuns : IDisposable
{
    public const double Epsilon = 0.1;
    private readonly string directory = TestPaths.NewScratchDirectory();

    public SmallDefenceRuns()
    {
        var mnist = TestPaths.Mnist(testImages: 1000);
        Test = mnist.Test;
        foreach (var defense in TrainingOptions.Defenses)
        {
            var options = new TrainingOptions
            {
                TrainSubset = 3000, Epochs = 2, BatchSize = 64, LearningRate = 2e-3, Schedule = "constant", Seed = 3,
                Defense = defense, DefenseEpsilon = Epsilon, DefenseSteps = 5,
            };
            var result = new Trainer(options, mnist, Path.Combine(directory, defense)).Run(resume: false);
            using (result.Network)
            using (var classifier = new NetworkClassifier(result.Network))
            {
                var pgd = new Pgd(new PgdOptions(Epsilon, Epsilon / 4, 10, Seed: 1));
                RobustAccuracy[defense] = AttackEvaluator.Run(classifier, Test, [pgd]).Report.RobustAccuracy;
            }
        }
    }

    public LabeledImages Test { get; }
    public Dictionary<string, double> RobustAccuracy { get; } = [];

    public void Dispose() => Directory.Delete(directory, recursive: true);
}

public sealed class AdversarialTrainingTests(SmallDefenceRuns runs) : IClassFixture<SmallDefenceRuns>, IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("fgsm")]
    [InlineData("fgsm-rs")]
    [InlineData("pgd")]
    [InlineData("trades")]
    public void Each_defence_improves_pgd_accuracy_over_standard_training(string defense)
    {
        // On the same 1,000 test images, a 2-point gain is about twice the spread of a paired difference at these accuracies. Measured
        // (AVX-512 host): standard 77.5%, fgsm 85.9%, fgsm-rs 85.8%, pgd 85.5%, trades 81.6%. On 300 images with a 3-point bar, TRADES
        // passed on one host and missed by a hair (85.0 against 82.0) on another.
        var standard = runs.RobustAccuracy["none"];
        var defended = runs.RobustAccuracy[defense];
        Assert.True(defended > standard + 0.02, $"{defense}: PGD accuracy {defended:P1} vs standard {standard:P1}");
    }

    [Fact]
    public void The_epoch_with_the_best_robust_validation_accuracy_is_kept()
    {
        var options = new TrainingOptions
        {
            TrainSubset = 1500, Epochs = 3, BatchSize = 64, LearningRate = 2e-3, Schedule = "constant", Seed = 4,
            Defense = "fgsm", DefenseEpsilon = 0.1, ValidationSize = 300, RobustValidationSize = 300, RobustValidationSteps = 5,
        };
        var runDirectory = Path.Combine(directory, "run");
        var result = new Trainer(options, TestPaths.Mnist(testImages: 1000), runDirectory).Run(resume: false);
        using var _ = result.Network;
        var robust = result.Record.Epochs.Select(e => e.RobustValidationAccuracy!.Value).ToList();
        Assert.Equal(robust.IndexOf(robust.Max()) + 1, result.Record.SelectedEpoch);
        var kept = Safetensors.Parse(File.ReadAllBytes(Path.Combine(runDirectory, Trainer.BestWeightsFile)));
        Assert.Equal(kept.Entries.Select(e => kept.Bytes(e).ToArray()), ModelWeights.Export(result.Network).OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => t.Data));
    }

    [Fact]
    public void Keep_last_packages_the_final_epoch_and_still_records_robustness()
    {
        var options = new TrainingOptions
        {
            TrainSubset = 1500, Epochs = 3, BatchSize = 64, LearningRate = 2e-3, Schedule = "constant", Seed = 4,
            Defense = "fgsm", DefenseEpsilon = 0.1, ValidationSize = 300, RobustValidationSize = 300, RobustValidationSteps = 5, Keep = "last",
        };
        var runDirectory = Path.Combine(directory, "run-last");
        var result = new Trainer(options, TestPaths.Mnist(testImages: 1000), runDirectory).Run(resume: false);
        using var _ = result.Network;
        Assert.Equal(3, result.Record.SelectedEpoch);
        Assert.All(result.Record.Epochs, e => Assert.NotNull(e.RobustValidationAccuracy));
        var last = Safetensors.Parse(File.ReadAllBytes(Directory.GetFiles(runDirectory, "epoch-003.checkpoint.safetensors").Single()));
        Assert.Equal(last.Entries.OrderBy(e => e.Name, StringComparer.Ordinal).Select(e => last.Bytes(e).ToArray()),
            ModelWeights.Export(result.Network).OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => t.Data));
        Assert.Throws<ArgumentException>(() => (options with { Keep = "first" }).Validate());
    }

    [Fact]
    public void A_collapse_of_robust_accuracy_is_recorded_and_the_earlier_best_epoch_stays_selected()
    {
        var record = new RunRecord("r", new TrainingOptions(), "mnist", new Dictionary<string, string>(), 0, 0, "x",
            MachineInfo.Current(1), DateTimeOffset.UtcNow, null, [], 0, null, null);
        foreach (var (epoch, robust) in new[] { (1, 0.50), (2, 0.85), (3, 0.30), (4, 0.80) })
            (record, _) = Trainer.SelectByRobustness(record, epoch, robust);
        Assert.Equal(2, record.SelectedEpoch);
        Assert.Equal(0.85, record.BestRobustValidationAccuracy);
        Assert.Equal([3], record.CollapsedEpochs!);
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(1.0, 0.15)]
    [InlineData(2.0, 0.3)]
    [InlineData(5.0, 0.3)]
    public void Eps_ramps_linearly_to_its_full_value(double position, double expected)
    {
        var trainer = new Trainer(new TrainingOptions { Defense = "pgd", DefenseEpsilon = 0.3, EpsilonRampEpochs = 2 }, TestPaths.Mnist(), directory);
        Assert.Equal(expected, trainer.EpsilonAt(position), 9);
    }

    [Theory]
    [InlineData("fgsm", 0.3)]
    [InlineData("fgsm-rs", 0.375)]
    [InlineData("pgd", 0.075)]
    public void Default_step_sizes_follow_the_literature(string defense, double expected)
    {
        Assert.Equal(expected, new TrainingOptions { Defense = defense, DefenseEpsilon = 0.3, DefenseSteps = 10 }.EffectiveDefenseStepSize, 9);
    }

    [Fact]
    public void The_late_epochs_use_more_attack_steps_with_a_step_to_match()
    {
        var options = new TrainingOptions { Defense = "trades", Epochs = 5, DefenseEpsilon = 0.3, DefenseSteps = 10, LateSteps = 40, LateEpochs = 2 };
        options.Validate();
        Assert.Equal([10, 10, 10, 40, 40], Enumerable.Range(1, 5).Select(options.DefenseStepsAt));
        Assert.Equal(0.075, options.DefenseStepSizeAt(3), 9);
        Assert.Equal(0.01875, options.DefenseStepSizeAt(4), 9);
        var plain = options with { LateSteps = null, LateEpochs = null };
        Assert.Equal(10, plain.DefenseStepsAt(5));
    }

    [Fact]
    public void Robust_validation_needs_held_out_images()
    {
        var error = Assert.Throws<ArgumentException>(() => new TrainingOptions { Defense = "pgd", RobustValidationSize = 500 }.Validate());
        Assert.Contains("held out", error.Message, StringComparison.Ordinal);
    }
}
