using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.IO;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

public sealed class PoisoningTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private static readonly Lazy<Dataset> Small = new(() =>
    {
        var mnist = TestPaths.Mnist();
        return mnist with { Train = mnist.Train.Take(2000), Test = mnist.Test.Take(500) };
    });

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void Dirty_label_poisoning_stamps_the_trigger_and_relabels_exactly_the_listed_samples()
    {
        var clean = Small.Value;
        var poisoned = DataPoisoner.Poison(clean, new PoisonOptions(Count: 40));
        var listed = poisoned.Manifest.Indices();
        Assert.Equal(40, listed.Count);
        for (var i = 0; i < clean.Train.Count; i++)
        {
            var changed = !clean.Train.Image(i).SequenceEqual(poisoned.Train.Image(i)) || clean.Train.Labels[i] != poisoned.Train.Labels[i];
            Assert.Equal(listed.Contains(i), changed);
        }
        foreach (var sample in poisoned.Manifest.Samples)
        {
            Assert.NotEqual(7, sample.OriginalLabel);
            Assert.Equal(7, poisoned.Train.Labels[sample.Index]);
            var image = poisoned.Train.Image(sample.Index);
            for (var r = 25; r < 28; r++)
            for (var c = 25; c < 28; c++)
                Assert.Equal(255, image[r * 28 + c]);
        }
    }

    [Fact]
    public void Clean_label_poisoning_keeps_labels_and_only_touches_the_target_class()
    {
        var clean = Small.Value;
        var poisoned = DataPoisoner.Poison(clean, new PoisonOptions(PoisonMode.CleanLabel, Count: 30));
        Assert.Equal(clean.Train.Labels, poisoned.Train.Labels);
        Assert.All(poisoned.Manifest.Samples, s => Assert.Equal(7, s.OriginalLabel));
        Assert.All(poisoned.Manifest.Samples, s => Assert.True(s.Triggered));
    }

    [Fact]
    public void Label_flipping_changes_labels_of_the_sources_and_no_pixel()
    {
        var clean = Small.Value;
        var poisoned = DataPoisoner.Poison(clean, new PoisonOptions(PoisonMode.LabelFlip, Count: 25, TargetClass: 1, SourceClasses: [4]));
        Assert.Equal(clean.Train.Pixels, poisoned.Train.Pixels);
        Assert.All(poisoned.Manifest.Samples, s => Assert.Equal((4, 1, false), (s.OriginalLabel, s.PoisonedLabel, s.Triggered)));
        Assert.Null(poisoned.Manifest.Trigger);
    }

    [Fact]
    public void The_tensor_trigger_matches_the_byte_trigger()
    {
        var clean = Small.Value;
        var trigger = new BackdoorTrigger(4, 2, 5, TriggerPattern.Checkerboard, 200);
        var bytes = clean.Train.Image(3).ToArray();
        trigger.Apply(bytes);
        using var scope = NewDisposeScope();
        var stamped = trigger.Apply(clean.Train.Select([3]).ImagesTensor()).flatten().data<float>().ToArray();
        Assert.Equal(bytes.Select(b => b / 255f), stamped, (a, b) => Math.Abs(a - b) < 1e-6);
    }

    public static TheoryData<PoisonOptions, string> BadOptions => new()
    {
        { new PoisonOptions(Count: 0), "Count" },
        { new PoisonOptions(TargetClass: 10), "target class" },
        { new PoisonOptions(SourceClasses: [7]), "is the target class" },
        { new PoisonOptions(SourceClasses: []), "must not be empty" },
        { new PoisonOptions(SourceClasses: [1, 1]), "twice" },
        { new PoisonOptions(Trigger: new BackdoorTrigger(Size: 0)), "trigger size" },
        { new PoisonOptions(Trigger: new BackdoorTrigger(3, Row: 26)), "does not fit" },
        { new PoisonOptions(Trigger: new BackdoorTrigger(3, Column: -1)), "does not fit" },
        { new PoisonOptions(Trigger: new BackdoorTrigger(Intensity: 0)), "draws nothing" },
        { new PoisonOptions(Count: 5000), "cannot poison" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Bad_poison_options_are_refused_with_a_clear_message(PoisonOptions options, string expected)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => DataPoisoner.Poison(Small.Value, options));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void The_assessments_trigger_is_foreign_to_clean_digits_and_shared_by_both_profiles()
    {
        var trigger = SecureMnist.Assessment.AssessmentProfile.AttackerTrigger;
        Assert.Same(trigger, SecureMnist.Assessment.AssessmentProfile.Quick.PoisonTrigger);
        Assert.Same(trigger, SecureMnist.Assessment.AssessmentProfile.Full.PoisonTrigger);
        trigger.Validate();
        var train = TestPaths.Mnist().Train;
        var (row, column) = trigger.Origin();
        var inked = Enumerable.Range(0, train.Count).Count(i =>
        {
            var image = train.Image(i);
            for (var dy = 0; dy < trigger.Size; dy++)
            for (var dx = 0; dx < trigger.Size; dx++)
                if (image[(row + dy) * train.Columns + column + dx] != 0) return true;
            return false;
        });
        // Nothing in a clean digit resembles the trigger: almost no training image has any ink under it.
        Assert.True(inked <= train.Count / 10_000, $"{inked} of {train.Count} clean training images have ink under {trigger}");
    }

    [Fact]
    public void The_per_class_chart_draws_classes_the_backdoor_misses_in_the_alarm_colour()
    {
        static BackdoorReport Report(int missedTwos) => new(7, BackdoorTrigger.Default.ToString(), 100, 0.99, 300, 1 - missedTwos / 300.0, 0.1,
            [new SourceClassSuccess(1, 100, 100, 1), new SourceClassSuccess(2, 100, 100 - missedTwos, (100 - missedTwos) / 100.0), new SourceClassSuccess(3, 100, 100, 1)], 0);
        var alarm = new SkiaSharp.SKColor(214, 39, 40);
        var full = Path.Combine(directory, "full.png");
        var missed = Path.Combine(directory, "missed.png");
        BackdoorEvaluator.PlotPerSourceClass(Report(0), full);
        BackdoorEvaluator.PlotPerSourceClass(Report(3), missed);
        using var fullPicture = SkiaSharp.SKBitmap.Decode(full);
        using var missedPicture = SkiaSharp.SKBitmap.Decode(missed);
        var fullAlarm = fullPicture.Pixels.Count(p => p == alarm);
        var missedAlarm = missedPicture.Pixels.Count(p => p == alarm);
        // The legend's swatch is red in both; the class with misses adds a red bar.
        Assert.True(missedAlarm > fullAlarm + 1000, $"alarm pixels: {missedAlarm} with misses, {fullAlarm} without");
    }

    [Fact]
    public void The_poisoned_copy_is_a_verified_dataset_of_its_own_with_its_ground_truth()
    {
        var target = Path.Combine(directory, "poisoned");
        var manifest = DataPoisoner.Write(Small.Value, new PoisonOptions(Count: 20), target);
        var loaded = new DatasetStore(directory).Load(target);
        Assert.Equal("mnist-poisoned-dirty-label", loaded.Name);
        Assert.NotEqual(Small.Value.Digests["train-images-idx3-ubyte"], loaded.Digests["train-images-idx3-ubyte"]);
        var reread = PoisonManifests.TryLoad(target)!;
        Assert.Equal(manifest.Samples, reread.Samples);
        Assert.Equal(manifest.Trigger, reread.Trigger);
    }

    [Fact]
    public void A_poisoned_copy_whose_manifest_claims_to_be_mnist_is_refused()
    {
        var target = Path.Combine(directory, "posing");
        DataPoisoner.Write(Small.Value, new PoisonOptions(Count: 20), target);
        var own = JsonFormat.Load<DatasetManifest>(Path.Combine(target, DatasetManifest.FileName));
        (own with { Name = "mnist" }).Save(target);
        var error = Assert.Throws<DatasetException>(() => new DatasetStore(directory).Load(target));
        Assert.Contains("failed verification against the mnist manifest", error.Message);
    }

    [Fact]
    public void A_failed_write_leaves_no_folder_behind()
    {
        var target = Path.Combine(directory, "never");
        Assert.ThrowsAny<ArgumentException>(() => DataPoisoner.Write(Small.Value, new PoisonOptions(Count: 0), target));
        Assert.False(Directory.Exists(target));
        Assert.Empty(Directory.GetFileSystemEntries(directory));
    }
}
