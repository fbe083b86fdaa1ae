using SecureMnist.Data;
using SecureMnist.IO;

namespace SecureMnist.Attacks.Evasion;

/// <summary>What an adversarial set was made from and with.</summary>
public sealed record AdversarialSetInfo(
    string Model, string ModelManifestSha256, string Dataset, int Images, IReadOnlyList<string> Attacks,
    double CleanAccuracy, double RobustAccuracy, DateTimeOffset CreatedUtc);

/// <summary>
/// Adversarial examples on disk, in IDX so any MNIST reader can take them: images as float32 IDX
/// (type 0x0D; exact, no 8-bit rounding), true labels and the model's predictions as unsigned-byte IDX,
/// and adversarial.json describing model, data and attacks.
/// </summary>
public static class AdversarialSet
{
    public const string ImagesFile = "images-idx3-float";
    public const string LabelsFile = "labels-idx1-ubyte";
    public const string PredictionsFile = "predictions-idx1-ubyte";
    public const string InfoFile = "adversarial.json";

    public static void Save(string directory, RobustnessRun run, AdversarialSetInfo info, int rows = 28, int columns = 28)
    {
        ArgumentNullException.ThrowIfNull(run);
        Directory.CreateDirectory(directory);
        IdxWriter.WriteFloatImages(Path.Combine(directory, ImagesFile), run.Adversarial, run.Labels.Length, rows, columns);
        IdxWriter.WriteLabels(Path.Combine(directory, LabelsFile), run.Labels);
        IdxWriter.WriteLabels(Path.Combine(directory, PredictionsFile), run.AdversarialPredictions.Select(p => (byte)p).ToArray());
        JsonFormat.Save(Path.Combine(directory, InfoFile), info);
    }

    /// <summary>Loads the images and true labels of a saved set.</summary>
    public static (float[] Images, byte[] Labels, AdversarialSetInfo Info) Load(string directory)
    {
        var (count, _, _, images) = IdxReader.ReadImagesAsFloat(Path.Combine(directory, ImagesFile));
        var labels = IdxReader.ReadLabels(Path.Combine(directory, LabelsFile));
        if (labels.Length != count) throw new IdxFormatException($"{directory}: {count} images but {labels.Length} labels");
        var info = JsonFormat.Load<AdversarialSetInfo>(Path.Combine(directory, InfoFile));
        return (images, labels, info);
    }
}
