using System.Text.Json;
using System.Text.Json.Serialization;
using SecureMnist.Data;
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
/// the filler images plus a random half of the evaluation set. Shadows are cached and resumable in <c>shadowDirectory</c>.
/// </summary>
public sealed class MembershipExperiment(MembershipOptions options, Dataset dataset, string shadowDirectory)
{
    public MembershipReport Run(string modelName, Module<Tensor, Tensor> target, RunRecord record, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(record);
        options.Validate();
        var (memberPool, _) = Trainer.Split(record.Options, dataset);
        var sets = MembershipSets.Draw(memberPool, dataset.Test, options.PerSide, options.Seed);
        var evaluation = sets.All();
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
            var (confidences, isIn, shadowSummary) = Shadows(record, memberPool, sets, evaluation, progress, cancellationToken);
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

    private static MembershipAttackResult Summarise(string name, double[] scores, int perSide) =>
        MembershipAttackResult.Of(name, scores[..perSide], scores[perSide..]);

    private (double[][] Confidence, bool[][] IsIn, ShadowSummary Summary) Shadows(RunRecord record, LabeledImages memberPool, MembershipSets sets, LabeledImages evaluation,
        IProgress<string>? progress, CancellationToken cancellationToken)
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
        var confidences = new double[options.Shadows][];
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
                reused++;
                continue;
            }
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
                var left = epochSeconds.Average() * (p.Epochs - p.Epoch + (options.Shadows - shadow - 1) * recipe.Epochs);
                progress?.Report($"shadow {shadow + 1}/{options.Shadows}: epoch {p.Epoch}/{p.Epochs} in {done.Seconds:F0} s; at this pace the shadows need about {FormatDuration(left)} more");
            });
            var result = new Trainer(shadowOptions, shadowData, folder, testEachEpoch: false).Run(resume, epochs, cancellationToken);
            using (result.Network)
                confidences[k] = MembershipSignals.Of(result.Network, evaluation).Confidence;
            IO.AtomicFile.WriteAllBytes(cache, JsonSerializer.SerializeToUtf8Bytes(new ShadowSignals(plan, confidences[k]), MembershipJsonContext.Default.ShadowSignals));
            trained++;
        }
        var summary = new ShadowSummary(options.Shadows, (int)Math.Round((double)imagesTotal / options.Shadows), recipe.Epochs, recipe.Architecture,
            recipe.Privacy is null ? (recipe.Defense == "none" ? "standard" : recipe.Defense) : "DP-SGD", (DateTime.UtcNow - started).TotalSeconds, trained, reused);
        return (confidences, isIn, summary);
    }

    private static string FormatDuration(double seconds) => seconds switch
    {
        < 90 => $"{seconds:F0} s",
        < 5400 => $"{seconds / 60:F0} min",
        _ => $"{seconds / 3600:F1} h",
    };
}
