using System.Text.Json;
using System.Text.Json.Serialization;
using SecureMnist.Data;
using SecureMnist.Runtime;
using SecureMnist.Training;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Privacy;

/// <summary>How a membership experiment is run.</summary>
/// <param name="PerSide">Members and non-members each (balanced).</param>
/// <param name="Shadows">LiRA shadow models (even; 0: the loss attack only).</param>
/// <param name="ShadowFiller">Training images outside the evaluation set that each shadow also trains on (null: as many as the target's members, so shadows match the target's training-set size).</param>
/// <param name="ShadowEpochs">Epochs of each shadow (null: the target's recipe).</param>
public sealed record MembershipOptions(int PerSide = 5000, int Shadows = 8, int Seed = 1, int? ShadowFiller = null, int? ShadowEpochs = null)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(PerSide, 10);
        if (Shadows != 0 && (Shadows < 2 || Shadows % 2 != 0 || Shadows > 256))
            throw new ArgumentOutOfRangeException(nameof(Shadows), Shadows, "shadows must be 0 (loss attack only) or an even number from 2 to 256 (LiRA needs each image IN half of them; 8 or more to be informative)");
        if (ShadowFiller is { } filler) ArgumentOutOfRangeException.ThrowIfNegative(filler, nameof(ShadowFiller));
        if (ShadowEpochs is { } epochs) ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1, nameof(ShadowEpochs));
    }
}

/// <summary>What the shadows were, so a report says exactly what ran.</summary>
/// <param name="TrainImagesEach">Training images per shadow, on average (the halves differ by a few images).</param>
public sealed record ShadowSummary(int Count, int TrainImagesEach, int Epochs, string Architecture, string Recipe, double Seconds, int Trained, int Reused);

/// <summary>What one shard's run of the shadows did: its shadows (0-based), how many it trained and reused, and the shadows no shard has finished yet.</summary>
public sealed record ShadowShardResult(Shard Shard, IReadOnlyList<int> Owned, int Trained, int Reused, IReadOnlyList<int> Missing)
{
    public bool Complete => Missing.Count == 0;
}

/// <summary>A membership experiment's outcome.</summary>
public sealed record MembershipReport(
    string Model, int Members, int NonMembers, int Seed, string MemberSource, string NonMemberSource,
    IReadOnlyList<MembershipAttackResult> Attacks, ShadowSummary? Shadows, PrivacyBound? Bound, bool? WithinBound, double TargetTrainAccuracy, double TargetTestAccuracy);

/// <summary>A shadow model's confidences on the evaluation images, cached next to its run so an interrupted experiment resumes.</summary>
internal sealed record ShadowSignals(string Plan, double[] Confidence);

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ShadowSignals))]
internal sealed partial class MembershipJsonContext : JsonSerializerContext;

/// <summary>
/// Membership inference against a trained model, the way Carlini et al. (2022) evaluate it: a balanced, randomly drawn set of
/// members (from the images the model's training record says it trained on) and non-members (test images it never saw); the
/// loss-threshold attack (Yeom et al. 2018); and LiRA with shadow models of the target's architecture and recipe, each trained on
/// the filler images plus a random half of the evaluation set. Shadows are cached and resumable in <c>shadowDirectory</c>, and
/// <see cref="TrainShadows"/> lets N processes (or machines sharing the folder) train them a shard each.
/// </summary>
public sealed class MembershipExperiment(MembershipOptions options, Dataset dataset, string shadowDirectory)
{
    public MembershipReport Run(string modelName, Module<Tensor, Tensor> target, RunRecord record, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(record);
        options.Validate();
        var (memberPool, sets, evaluation) = Draw(record);
        progress?.Report($"scoring {evaluation.Count} images with the target");
        var signals = MembershipSignals.Of(target, evaluation);
        var n = options.PerSide;
        var attacks = new List<MembershipAttackResult>
        {
            Summarise("loss threshold", signals.Loss.Select(l => -l).ToArray(), n),
        };
        ShadowSummary? summary = null;
        if (options.Shadows > 0)
        {
            var (trainedOrCached, isIn, shadowSummary, _) = Shadows(record, memberPool, sets, evaluation, Shard.All, progress, cancellationToken);
            // One shard owns every shadow, so each was trained or read from the cache.
            var confidences = trainedOrCached.Select(c => c ?? throw new InvalidOperationException("a shadow is missing")).ToArray();
            summary = shadowSummary;
            attacks.Add(Summarise($"LiRA online ({options.Shadows} shadows)", Lira.Scores(signals.Confidence, confidences, isIn, online: true, fixedVariance: true), n));
            attacks.Add(Summarise($"LiRA offline ({options.Shadows / 2} OUT per image)", Lira.Scores(signals.Confidence, confidences, isIn, online: false, fixedVariance: true), n));
        }
        var bound = record.Privacy is { } privacy ? new PrivacyBound(privacy.Epsilon, privacy.Delta) : null;
        var trainAccuracy = signals.Correct[..n].Count(c => c) / (double)n;
        var testAccuracy = signals.Correct[n..].Count(c => c) / (double)n;
        return new MembershipReport(modelName, n, n, options.Seed, $"the model's {memberPool.Count} training images ({record.Dataset})", $"the {dataset.Test.Count} test images ({dataset.Name})",
            attacks, summary, bound, bound is null ? null : attacks.All(bound.Holds), trainAccuracy, testAccuracy);
    }

    /// <summary>
    /// Trains the shadows shard K of N owns (those at positions K - 1, K - 1 + N, ...), resuming or reusing what the shadow folder holds,
    /// and trains none of the others: N processes sharing the folder train every shadow once. <see cref="Run"/> then reuses them all.
    /// </summary>
    public ShadowShardResult TrainShadows(RunRecord record, Shard shard, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(shard);
        options.Validate();
        if (options.Shadows == 0) throw new ArgumentException("no shadows to train: --shard needs --shadows 2 or more");
        var (memberPool, sets, evaluation) = Draw(record);
        var (confidences, _, summary, owned) = Shadows(record, memberPool, sets, evaluation, shard, progress, cancellationToken);
        var missing = Enumerable.Range(0, options.Shadows).Where(k => confidences[k] is null).ToList();
        return new ShadowShardResult(shard, owned, summary.Trained, summary.Reused, missing);
    }

    private (LabeledImages MemberPool, MembershipSets Sets, LabeledImages Evaluation) Draw(RunRecord record)
    {
        var (memberPool, _) = Trainer.Split(record.Options, dataset);
        var sets = MembershipSets.Draw(memberPool, dataset.Test, options.PerSide, options.Seed);
        return (memberPool, sets, sets.All());
    }

    private static MembershipAttackResult Summarise(string name, double[] scores, int perSide) =>
        MembershipAttackResult.Of(name, scores[..perSide], scores[perSide..]);

    /// <summary>The shadows' confidences on the evaluation images: trained (or resumed) for the shard's own shadows, read from the cache
    /// for the others, null where another shard has not finished one.</summary>
    private (double[]?[] Confidence, bool[][] IsIn, ShadowSummary Summary, IReadOnlyList<int> Owned) Shadows(RunRecord record, LabeledImages memberPool,
        MembershipSets sets, LabeledImages evaluation, Shard shard, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var isIn = Lira.Assign(options.Shadows, evaluation.Count, options.Seed + 7919);
        // Filler: target members outside the evaluation set, so each shadow trains on as many images as the target did.
        var drawn = new HashSet<int>(sets.MemberIndices);
        var rest = Enumerable.Range(0, memberPool.Count).Where(i => !drawn.Contains(i)).ToArray();
        var fillerCount = Math.Min(rest.Length, options.ShadowFiller ?? Math.Max(0, memberPool.Count - sets.PerSide));
        new SeededRandom(options.Seed + 104_729).Shuffle(rest);
        var filler = memberPool.Select(rest[..fillerCount]);
        var recipe = record.Options with
        {
            TrainSubset = null, ValidationSize = 0, RobustValidationSize = 0, Keep = null,
            Epochs = options.ShadowEpochs ?? record.Options.Epochs,
            LateEpochs = record.Options.LateEpochs is { } late ? Math.Min(late, options.ShadowEpochs ?? record.Options.Epochs) : null,
        };
        var plan = $"{options.PerSide}/{options.Seed}/{options.Shadows}/{fillerCount}/{JsonSerializer.Serialize(recipe, Security.SecurityJsonContext.Default.TrainingOptions)}";
        Directory.CreateDirectory(shadowDirectory);
        var confidences = new double[]?[options.Shadows];
        var owned = shard.Select(Enumerable.Range(0, options.Shadows).ToList());
        var started = DateTime.UtcNow;
        int trained = 0, reused = 0;
        // Epoch times of the shadows trained in this run, for the estimate of what is left (each shadow has the same recipe).
        var epochSeconds = new List<double>();
        long imagesTotal = 0;
        for (var k = 0; k < options.Shadows; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var folder = Path.Combine(shadowDirectory, $"shadow-{k:D3}");
            var cache = Path.Combine(folder, "signals.json");
            var inside = Enumerable.Range(0, evaluation.Count).Where(i => isIn[k][i]).ToArray();
            imagesTotal += fillerCount + inside.Length;
            if (File.Exists(cache) && JsonSerializer.Deserialize(File.ReadAllBytes(cache), MembershipJsonContext.Default.ShadowSignals) is { } saved && saved.Plan == plan)
            {
                confidences[k] = saved.Confidence;
                if (shard.Owns(k)) reused++;
                continue;
            }
            if (!shard.Owns(k)) continue;
            progress?.Report($"shadow {k + 1}/{options.Shadows}: training {recipe.Architecture} on {fillerCount + inside.Length} images ({recipe.Epochs} epochs)");
            // The shadow's own test score is recorded but unused; 1,000 test images keep it cheap.
            var shadowData = dataset with { Train = LabeledImages.Concat(filler, evaluation.Select(inside)), Test = dataset.Test.Take(1000) };
            var shadowOptions = recipe with { Seed = unchecked(record.Options.Seed * 7 + 1000 + k) };
            var resume = Checkpoint.TryReadState(folder) is { } state && state.Record.Options == shadowOptions;
            if (!resume && Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            var shadow = k;
            var epochs = new InlineProgress<TrainingProgress>(p =>
            {
                if (p.Completed is not { } done) return;
                epochSeconds.Add(done.Seconds);
                var left = epochSeconds.Average() * (p.Epochs - p.Epoch + owned.Count(o => o > shadow) * recipe.Epochs);
                progress?.Report($"shadow {shadow + 1}/{options.Shadows}: epoch {p.Epoch}/{p.Epochs} in {done.Seconds:F0} s; at this pace the shadows need about {FormatDuration(left)} more");
            });
            var result = new Trainer(shadowOptions, shadowData, folder, testEachEpoch: false).Run(resume, epochs, cancellationToken);
            double[] confidence;
            using (result.Network)
                confidence = MembershipSignals.Of(result.Network, evaluation).Confidence;
            confidences[k] = confidence;
            IO.AtomicFile.WriteAllBytes(cache, JsonSerializer.SerializeToUtf8Bytes(new ShadowSignals(plan, confidence), MembershipJsonContext.Default.ShadowSignals));
            trained++;
        }
        var summary = new ShadowSummary(options.Shadows, (int)Math.Round((double)imagesTotal / options.Shadows), recipe.Epochs, recipe.Architecture,
            recipe.Privacy is null ? (recipe.Defense == "none" ? "standard" : recipe.Defense) : "DP-SGD", (DateTime.UtcNow - started).TotalSeconds, trained, reused);
        return (confidences, isIn, summary, owned);
    }

    private static string FormatDuration(double seconds) => seconds switch
    {
        < 90 => $"{seconds:F0} s",
        < 5400 => $"{seconds / 60:F0} min",
        _ => $"{seconds / 3600:F1} h",
    };
}
