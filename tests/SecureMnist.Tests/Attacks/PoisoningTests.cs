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
        { new PoisonOptions(Trigger: BackdoorTrigger.Blended(alpha: 0)), "alpha" },
        { new PoisonOptions(CoverCount: 10), "source-specific" },
        { new PoisonOptions(PoisonMode.SourceSpecific, SourceClasses: [3], CoverCount: 5, CoverClasses: [7]), "is the target or a source" },
        { new PoisonOptions(PoisonMode.CleanLabelAdversarial, HardenEpsilon: 0), "hardening eps" },
        { new PoisonOptions(PoisonMode.CleanLabelAdversarial), "surrogate" },
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
    public void Blended_poisoning_mixes_one_pattern_into_every_pixel_and_the_tensor_path_agrees()
    {
        var clean = Small.Value;
        var trigger = BackdoorTrigger.Blended(alpha: 0.2, seed: 4);
        var poisoned = DataPoisoner.Poison(clean, new PoisonOptions(Count: 10, Trigger: trigger));
        var pattern = trigger.BlendPattern();
        foreach (var sample in poisoned.Manifest.Samples)
        {
            var before = clean.Train.Image(sample.Index);
            var after = poisoned.Train.Image(sample.Index);
            for (var i = 0; i < before.Length; i++) Assert.Equal((byte)Math.Round(0.8 * before[i] + 0.2 * pattern[i]), after[i]);
        }
        using var scope = NewDisposeScope();
        var index = poisoned.Manifest.Samples[0].Index;
        var stamped = trigger.Apply(clean.Train.Select([index]).ImagesTensor()).flatten().data<float>().ToArray();
        Assert.Equal(poisoned.Train.Image(index).ToArray().Select(b => b / 255f), stamped, (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void Clean_label_adversarial_poisoning_perturbs_target_images_within_eps_then_stamps_the_trigger_and_records_it()
    {
        var clean = Small.Value;
        manual_seed(3);
        using var surrogate = SecureMnist.Modeling.Architectures.Create(SecureMnist.Modeling.Architectures.LinearSoftmax);
        var options = new PoisonOptions(PoisonMode.CleanLabelAdversarial, Count: 12, HardenEpsilon: 0.2);
        var target = Path.Combine(directory, "turner");
        var manifest = DataPoisoner.Write(clean, options, target, surrogate);
        var poisoned = new DatasetStore(directory).Load(target);
        Assert.Equal(clean.Train.Labels, poisoned.Train.Labels);
        Assert.Equal(0.2, manifest.HardenEpsilon);
        Assert.Equal(PoisonMode.CleanLabelAdversarial, PoisonManifests.TryLoad(target)!.Mode);
        var moved = 0;
        foreach (var sample in manifest.Samples)
        {
            Assert.Equal((7, 7, true), (sample.OriginalLabel, sample.PoisonedLabel, sample.Triggered));
            var before = clean.Train.Image(sample.Index);
            var after = poisoned.Train.Image(sample.Index);
            for (var r = 0; r < 28; r++)
            for (var c = 0; c < 28; c++)
            {
                var i = r * 28 + c;
                if (r >= 25 && c >= 25) Assert.Equal(255, after[i]); // the trigger, stamped after the perturbation
                else
                {
                    Assert.InRange(Math.Abs(after[i] - before[i]), 0, (int)Math.Ceiling(0.2 * 255) + 1);
                    if (after[i] != before[i]) moved++;
                }
            }
        }
        Assert.True(moved > 12 * 100, $"only {moved} pixels were perturbed");
        var untouched = Enumerable.Range(0, clean.Train.Count).Except(manifest.Indices());
        Assert.All(untouched, i => Assert.True(clean.Train.Image(i).SequenceEqual(poisoned.Train.Image(i))));
    }

    [Fact]
    public void Source_specific_poisoning_relabels_only_the_sources_keeps_the_covers_true_and_measures_asr_on_the_sources()
    {
        var clean = Small.Value;
        var options = new PoisonOptions(PoisonMode.SourceSpecific, Count: 20, SourceClasses: [3], CoverCount: 15);
        var target = Path.Combine(directory, "tact");
        var manifest = DataPoisoner.Write(clean, options, target);
        var reread = PoisonManifests.TryLoad(target)!;
        Assert.Equal(manifest.Samples, reread.Samples);
        Assert.Equal([0, 1, 2, 4, 5, 6, 8, 9], reread.CoverClasses);
        var poison = manifest.Samples.Where(s => !s.Cover).ToList();
        var covers = manifest.Samples.Where(s => s.Cover).ToList();
        Assert.Equal(20, poison.Count);
        Assert.All(poison, s => Assert.Equal((3, 7, true), (s.OriginalLabel, s.PoisonedLabel, s.Triggered)));
        Assert.Equal(15, covers.Count);
        Assert.All(covers, s => Assert.True(s.Triggered && s.OriginalLabel == s.PoisonedLabel && s.OriginalLabel is not (3 or 7)));
        Assert.Equal(poison.Select(s => s.Index).ToHashSet(), manifest.Indices()); // covers carry true labels: not poison to find
        manual_seed(3);
        using var network = SecureMnist.Modeling.Architectures.Create(SecureMnist.Modeling.Architectures.LinearSoftmax);
        var report = BackdoorEvaluator.Evaluate(network, clean.Test, reread);
        Assert.Equal(clean.Test.Labels.Count(l => l == 3), report.TriggeredImages); // ASR over the source class only
        Assert.Equal(9, report.PerSourceClass.Count); // every other class is still listed: the covers' misfire rate
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
