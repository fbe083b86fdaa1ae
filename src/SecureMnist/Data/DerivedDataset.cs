using SecureMnist.IO;

namespace SecureMnist.Data;

/// <summary>A dataset made from a verified one by changing its training split (poisoned or sanitized copies).</summary>
public static class DerivedDataset
{
    /// <summary>Writes a dataset folder whose training split is <paramref name="train"/> and whose test split is the clean one.</summary>
    public static void Write(Dataset clean, LabeledImages train, string targetDirectory, string name, string source, Action<string>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(train);
        if (DatasetManifest.KnownNames.Contains(name)) throw new ArgumentException($"a derived dataset must not take the name '{name}' of an original");
        AtomicDirectory.Write(targetDirectory, staging =>
        {
            IdxWriter.WriteImages(Path.Combine(staging, "train-images-idx3-ubyte"), train.Pixels, train.Count, train.Rows, train.Columns);
            IdxWriter.WriteLabels(Path.Combine(staging, "train-labels-idx1-ubyte"), train.Labels);
            var test = clean.Test;
            IdxWriter.WriteImages(Path.Combine(staging, "t10k-images-idx3-ubyte"), test.Pixels, test.Count, test.Rows, test.Columns);
            IdxWriter.WriteLabels(Path.Combine(staging, "t10k-labels-idx1-ubyte"), test.Labels);
            var files = Directory.GetFiles(staging).ToDictionary(path => Path.GetFileName(path), DatasetManifest.Sha256Of);
            new DatasetManifest(name, source, files).Save(staging);
            extra?.Invoke(staging);
        });
    }
}
