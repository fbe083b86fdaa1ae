namespace SecureMnist.Training;

/// <summary>
/// A snapshot of a running training job, reported during each epoch and once more, with
/// <see cref="Completed"/> set, after the epoch's checkpoint is on disk.
/// </summary>
public sealed record TrainingProgress(
    int Epoch, int Epochs, int Batch, int Batches, double Loss, double Accuracy, double ImagesPerSecond, TimeSpan Remaining, string Phase,
    EpochRecord? Completed = null);
