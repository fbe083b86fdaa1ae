namespace SecureMnist.Training;

/// <summary>A snapshot of a running training job, reported after each batch.</summary>
public sealed record TrainingProgress(
    int Epoch, int Epochs, int Batch, int Batches, double Loss, double Accuracy, double ImagesPerSecond, TimeSpan Remaining, string Phase);
