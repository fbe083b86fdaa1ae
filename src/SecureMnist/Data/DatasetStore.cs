namespace SecureMnist.Data;

/// <summary>A verified dataset: both splits and the digests that were checked.</summary>
public sealed record Dataset(string Name, string Directory, LabeledImages Train, LabeledImages Test, IReadOnlyDictionary<string, string> Digests);

/// <summary>Finds datasets by name or folder, verifies them against their manifest, and loads them.</summary>
public sealed class DatasetStore(string dataRoot)
{
    public const string DefaultRoot = "data";
    public string DataRoot { get; } = dataRoot;

    public string DefaultDirectory(string name) => Path.Combine(DataRoot, name);

    /// <summary>Resolves a dataset name ("mnist", "fashion-mnist") or folder path to its folder and manifest.</summary>
    public (string Directory, DatasetManifest Manifest) Resolve(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (DatasetManifest.KnownNames.Contains(nameOrPath))
        {
            var directory = DefaultDirectory(nameOrPath);
            if (!System.IO.Directory.Exists(directory))
                throw new DatasetException($"dataset '{nameOrPath}' is not installed in {directory}; run: ./securemnist data fetch --dataset {nameOrPath}");
            return (directory, DatasetManifest.Known(nameOrPath));
        }
        if (!System.IO.Directory.Exists(nameOrPath))
            throw new DatasetException($"'{nameOrPath}' is neither a known dataset ({string.Join(", ", DatasetManifest.KnownNames)}) nor a folder");
        var ownManifest = Path.Combine(nameOrPath, DatasetManifest.FileName);
        if (File.Exists(ownManifest))
        {
            DatasetManifest own;
            using (var stream = File.OpenRead(ownManifest)) own = DatasetManifest.Parse(stream, ownManifest);
            // A folder may not vouch for itself under an original's name: those are checked against the embedded digests.
            return (nameOrPath, DatasetManifest.KnownNames.Contains(own.Name) ? DatasetManifest.Known(own.Name) : own);
        }
        foreach (var known in DatasetManifest.KnownNames.Select(DatasetManifest.Known))
        {
            if (known.Files.Keys.All(file => File.Exists(Path.Combine(nameOrPath, file))))
                return (nameOrPath, known);
        }
        throw new DatasetException($"{nameOrPath} has no {DatasetManifest.FileName} and its files match no known dataset; nothing there can be verified");
    }

    public DatasetVerification Verify(string nameOrPath)
    {
        var (directory, manifest) = Resolve(nameOrPath);
        return manifest.Verify(directory);
    }

    /// <summary>Verifies, then loads both splits. Nothing is read from an unverified folder.</summary>
    public Dataset Load(string nameOrPath)
    {
        var (directory, manifest) = Resolve(nameOrPath);
        var verification = manifest.Verify(directory);
        if (!verification.Ok)
            throw new DatasetException($"{directory} failed verification against the {manifest.Name} manifest: {verification.Message}");
        var train = LoadSplit(directory, manifest, "train");
        var test = LoadSplit(directory, manifest, "t10k");
        return new Dataset(manifest.Name, directory, train, test, manifest.Files);
    }

    private static LabeledImages LoadSplit(string directory, DatasetManifest manifest, string prefix)
    {
        string Find(string stem) =>
            manifest.Files.Keys.FirstOrDefault(f => f == stem || f == stem + ".gz")
            ?? throw new DatasetException($"the {manifest.Name} manifest lists no {stem} file");
        var images = Path.Combine(directory, Find($"{prefix}-images-idx3-ubyte"));
        var labels = Path.Combine(directory, Find($"{prefix}-labels-idx1-ubyte"));
        var (idx, labelBytes) = IdxReader.ReadPair(images, labels);
        return new LabeledImages(idx.Pixels, labelBytes, idx.Rows, idx.Columns);
    }
}
