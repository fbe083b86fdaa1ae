using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Privacy;
using SecureMnist.Runtime;
using SecureMnist.Training;

namespace SecureMnist.Tests.Privacy;

public sealed class MembershipInferenceTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static LabeledImages Numbered(int count, byte label) =>
        new(Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat((byte)(i % 256), 784)).ToArray(), Enumerable.Repeat(label, count).ToArray());

    [Fact]
    public void Balanced_sets_draw_as_many_members_as_non_members_at_random_from_their_own_pools()
    {
        var members = Numbered(300, 1);
        var nonMembers = Numbered(200, 2);
        var sets = MembershipSets.Draw(members, nonMembers, perSide: 150, seed: 4);
        Assert.Equal(150, sets.Members.Count);
        Assert.Equal(150, sets.NonMembers.Count);
        Assert.All(sets.Members.Labels, l => Assert.Equal(1, l));
        Assert.All(sets.NonMembers.Labels, l => Assert.Equal(2, l));
        Assert.Equal(150, sets.MemberIndices.Distinct().Count());
        Assert.NotEqual(Enumerable.Range(0, 150), sets.MemberIndices); // random, not the first 150
        Assert.True(sets.MemberIndices.Max() > 200);
        for (var i = 0; i < 150; i++) Assert.Equal(sets.MemberIndices[i] % 256, sets.Members.Image(i)[0]);
        Assert.Equal(300, sets.All().Count);
        Assert.NotEqual(sets.MemberIndices, MembershipSets.Draw(members, nonMembers, 150, seed: 5).MemberIndices);
        // Never unbalanced: a pool too small is an error, not a smaller side.
        Assert.Contains("200 non-members", Assert.Throws<ArgumentException>(() => MembershipSets.Draw(members, nonMembers, 250, 4)).Message);
    }

    [Fact]
    public void Every_image_is_in_exactly_half_the_shadows()
    {
        var isIn = Lira.Assign(8, 1000, seed: 2);
        for (var i = 0; i < 1000; i++) Assert.Equal(4, isIn.Count(m => m[i]));
        Assert.All(isIn, m => Assert.InRange(m.Count(x => x), 400, 600));
        Assert.Throws<ArgumentOutOfRangeException>(() => Lira.Assign(7, 10, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Lira.Assign(0, 10, 1));
    }

    [Fact]
    public void Lira_separates_members_when_in_and_out_confidences_differ_and_not_when_they_agree()
    {
        var random = new SeededRandom(3);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        const int n = 400, shadows = 16;
        var isIn = Lira.Assign(shadows, 2 * n, seed: 1);
        var difficulty = Enumerable.Range(0, 2 * n).Select(_ => 3 * Normal()).ToArray(); // per-image offset LiRA must calibrate away
        foreach (var gap in new[] { 2.0, 0.0 })
        {
            var shadowConfidence = Enumerable.Range(0, shadows).Select(k => Enumerable.Range(0, 2 * n).Select(i => difficulty[i] + (isIn[k][i] ? gap : 0) + Normal()).ToArray()).ToArray();
            var target = Enumerable.Range(0, 2 * n).Select(i => difficulty[i] + (i < n ? gap : 0) + Normal()).ToArray();
            foreach (var online in new[] { true, false })
            {
                var scores = Lira.Scores(target, shadowConfidence, isIn, online, fixedVariance: true);
                var auc = SecureMnist.Evaluation.Roc.Auc(scores[..n], scores[n..]);
                if (gap > 0) Assert.True(auc > 0.85, $"online {online}: AUC {auc:F3} with a gap of 2 standard deviations");
                else Assert.InRange(auc, 0.42, 0.58);
            }
            // Without calibration (the raw confidence), the per-image difficulty drowns the gap.
            if (gap > 0) Assert.True(SecureMnist.Evaluation.Roc.Auc(target[..n], target[n..]) < 0.75);
        }
    }

    [Fact]
    public void The_dp_bound_caps_the_true_positive_rate()
    {
        var bound = new PrivacyBound(Epsilon: 3, Delta: 1e-5);
        Assert.Equal(Math.Exp(3) * 0.001 + 1e-5, bound.MaxTruePositiveRate(0.001), 12);
        Assert.Equal(1.0, bound.MaxTruePositiveRate(0.5));
        Assert.True(bound.Holds(new MembershipAttackResult("a", 0.5, 0.01, 0.1, 0.5, [])));
        Assert.False(bound.Holds(new MembershipAttackResult("a", 0.5, 0.03, 0.1, 0.5, [])));
    }

    [Fact]
    public void Lira_finds_the_members_of_a_model_overfit_on_500_images()
    {
        // The sanity check the issue asks for: a target trained long on 500 images leaks; LiRA with 8 shadows must see it.
        var mnist = TestPaths.Mnist(testImages: 1000);
        var options = new TrainingOptions
        {
            Architecture = Architectures.DpCnn, TrainSubset = 500, Epochs = 30, BatchSize = 50, LearningRate = 3e-3, Schedule = "constant", Seed = 2,
        };
        var target = new Trainer(options, mnist, Path.Combine(directory, "target")).Run(resume: false);
        using var _ = target.Network;
        var experiment = new MembershipExperiment(new MembershipOptions(PerSide: 250, Shadows: 8, Seed: 3), mnist, Path.Combine(directory, "shadows"));
        var messages = new List<string>();
        var report = experiment.Run("overfit", target.Network, target.Record, new InlineProgress<string>(messages.Add));
        Assert.Equal(250, report.Members);
        // Shadows take hours on a real recipe: every epoch says how far along they are and how long the rest will take.
        Assert.Equal(8 * 30, messages.Count(m => m.Contains("at this pace the shadows need about", StringComparison.Ordinal)));
        Assert.Contains(messages, m => m.StartsWith("shadow 8/8: epoch 30/30", StringComparison.Ordinal));
        Assert.Equal(1.0, report.TargetTrainAccuracy); // overfit: every member right
        var lira = report.Attacks.Single(a => a.Attack.StartsWith("LiRA online", StringComparison.Ordinal));
        Assert.True(lira.Auc > 0.8, $"LiRA AUC {lira.Auc:F3}");
        Assert.True(lira.TprAtFpr001 > 0.01, $"LiRA TPR at 1% FPR {lira.TprAtFpr001:P1}");
        Assert.InRange(report.Shadows!.TrainImagesEach, 450, 550); // 250 filler + about half of the 500 evaluation images
        Assert.Equal(8, report.Shadows.Trained);
        Assert.Null(report.Bound);

        // The shadows are cached: a second run trains none and scores the same.
        var again = experiment.Run("overfit", target.Network, target.Record);
        Assert.Equal(8, again.Shadows!.Reused);
        Assert.Equal(lira.Auc, again.Attacks.Single(a => a.Attack == lira.Attack).Auc, 12);
    }

    [Fact]
    public void Shards_train_each_shadow_once_and_the_report_reuses_them_as_if_one_process_had_trained_them()
    {
        var mnist = TestPaths.Mnist(testImages: 1000);
        var recipe = new TrainingOptions
        {
            Architecture = Architectures.LinearSoftmax, TrainSubset = 200, Epochs = 2, BatchSize = 50, LearningRate = 1e-2, Schedule = "constant", Seed = 4,
        };
        var target = new Trainer(recipe, mnist, Path.Combine(directory, "target")).Run(resume: false);
        using var _ = target.Network;
        var options = new MembershipOptions(PerSide: 100, Shadows: 4, Seed: 5);
        var shared = Path.Combine(directory, "shared");
        bool Finished(int shadow) => File.Exists(Path.Combine(shared, $"shadow-{shadow:D3}", "signals.json"));

        // Shard 1 of 2 trains shadows 0 and 2 only, and knows 1 and 3 are still to come.
        var first = new MembershipExperiment(options, mnist, shared).TrainShadows(target.Record, new Shard(1, 2));
        Assert.Equal([0, 2], first.Owned);
        Assert.Equal((2, 0), (first.Trained, first.Reused));
        Assert.Equal([1, 3], first.Missing);
        Assert.Equal([true, false, true, false], Enumerable.Range(0, 4).Select(Finished));

        // Shard 2 of 2 trains the other two and finds the set complete; a shard run again trains nothing.
        var second = new MembershipExperiment(options, mnist, shared).TrainShadows(target.Record, new Shard(2, 2));
        Assert.Equal((2, 0), (second.Trained, second.Reused));
        Assert.True(second.Complete);
        var again = new MembershipExperiment(options, mnist, shared).TrainShadows(target.Record, new Shard(1, 2));
        Assert.Equal((0, 2), (again.Trained, again.Reused));

        // The report reuses all four and scores exactly what one process training every shadow scores.
        var merged = new MembershipExperiment(options, mnist, shared).Run("target", target.Network, target.Record);
        Assert.Equal((0, 4), (merged.Shadows!.Trained, merged.Shadows.Reused));
        var single = new MembershipExperiment(options, mnist, Path.Combine(directory, "single")).Run("target", target.Network, target.Record);
        Assert.Equal(4, single.Shadows!.Trained);
        Assert.Equal(single.Attacks.Select(a => (a.Attack, a.Auc, a.TprAtFpr0001, a.TprAtFpr001)), merged.Attacks.Select(a => (a.Attack, a.Auc, a.TprAtFpr0001, a.TprAtFpr001)));
        Assert.Throws<ArgumentException>(() => new MembershipExperiment(options with { Shadows = 0 }, mnist, shared).TrainShadows(target.Record, new Shard(1, 2)));
    }
}
