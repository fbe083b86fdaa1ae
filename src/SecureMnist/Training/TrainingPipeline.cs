using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.Security;

namespace SecureMnist.Training;

public sealed record PackagedTraining(TrainingResult Training, ModelManifest Manifest, string PackageDirectory);

/// <summary>Train, evaluate on the test set, and write a signed package whose manifest carries the run record.</summary>
public static class TrainingPipeline
{
    public static PackagedTraining TrainAndPackage(TrainingOptions options, Dataset dataset, string runDirectory, string packageDirectory,
        SigningKey key, bool resume, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(dataset);
        var result = new Trainer(options, dataset, runDirectory).Run(resume, progress, cancellationToken);
        var manifest = ModelPackage.Write(packageDirectory, options.Architecture, result.Network,
            new ModelPackage.Provenance(dataset.Name, dataset.Digests, result.Record,
                new ModelMetrics(result.Test.Accuracy, result.Test.Loss, result.Test.Images)),
            key);
        return new PackagedTraining(result, manifest, packageDirectory);
    }

    /// <summary>Opens the signing key, creating one at the default path when none exists there yet.</summary>
    public static (SigningKey Key, bool Created) OpenOrCreateKey(string path, bool createIfMissing)
    {
        if (File.Exists(path)) return (SigningKey.FromFile(path), false);
        if (!createIfMissing) throw new ModelPackageException($"signing key {path} not found; create one with: ./securemnist keys generate --out {path}");
        var key = SigningKey.Generate();
        key.Save(path);
        return (key, true);
    }
}
