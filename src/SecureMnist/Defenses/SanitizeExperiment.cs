using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Defenses;

/// <summary>Before and after sanitizing: what was removed, and the backdoor's effect on both models (when the poison is known).</summary>
public sealed record SanitizeReport(
    string PoisonedModel, string SanitizedDataset, string SanitizedModel, int Removed, PoisonDetectionScore? Detection,
    BackdoorReport? Before, BackdoorReport? After, double TrainingSeconds);

/// <summary>Sanitize and retrain: drop the flagged samples, train again with the poisoned model's own recipe, compare.</summary>
public static class SanitizeExperiment
{
    public static SanitizeReport Run(LoadedModel poisonedModel, Dataset poisoned, PoisonDetectionReport detection,
        string sanitizedDataDirectory, string packageDirectory, string runDirectory, SigningKey key, bool resume,
        int? epochs = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(poisonedModel);
        ArgumentNullException.ThrowIfNull(poisoned);
        ArgumentNullException.ThrowIfNull(detection);
        var options = poisonedModel.Manifest.Training?.Options ?? new TrainingOptions { Architecture = poisonedModel.Manifest.Architecture };
        if (epochs is { } e) options = options with { Epochs = e };
        options.Validate();
        if (!resume || !Directory.Exists(sanitizedDataDirectory)) Sanitizer.Write(poisoned, detection, sanitizedDataDirectory);
        var sanitized = new DatasetStore(DatasetStore.DefaultRoot).Load(sanitizedDataDirectory);
        var trained = TrainingPipeline.TrainAndPackage(options, sanitized, runDirectory, packageDirectory, key, resume, progress, cancellationToken);

        BackdoorReport? before = null, after = null;
        if (PoisonManifests.TryLoad(poisoned.Directory) is { Trigger: not null } poison)
        {
            before = BackdoorEvaluator.Evaluate(poisonedModel.Network, poisoned.Test, poison);
            after = BackdoorEvaluator.Evaluate(trained.Training.Network, sanitized.Test, poison);
        }
        return new SanitizeReport(poisonedModel.Directory, sanitizedDataDirectory, packageDirectory, detection.Flagged.Count,
            detection.Score, before, after, trained.Training.Record.Epochs.Sum(x => x.Seconds));
    }
}
