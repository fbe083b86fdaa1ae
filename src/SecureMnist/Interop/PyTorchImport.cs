using System.Security.Cryptography;
using SecureMnist.Modeling;
using SecureMnist.Security;

namespace SecureMnist.Interop;

/// <summary>What an import produced: the package's manifest and the tensors as they were named in the file.</summary>
/// <param name="Note">What the import assumed, when it had to (an nn.Sequential read as one of our architectures); null otherwise.</param>
public sealed record PyTorchImportResult(ModelManifest Manifest, IReadOnlyList<string> SourceNames, IReadOnlyList<PickleGlobal> Globals, string? Note = null);

/// <summary>
/// Turns a PyTorch state_dict file into a signed package: read through the restricted unpickler, names mapped onto
/// one of our architectures (the seeds' PyTorch CNN uses seed-cnn's names; an nn.Sequential is matched layer by layer, see
/// <see cref="SequentialNames"/>), every shape checked, then written like any trained model.
/// </summary>
public static class PyTorchImport
{
    public static PyTorchImportResult Import(string pytorchFile, string architecture, string packageDirectory, SigningKey key, PyTorchArchiveLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(pytorchFile);
        ArgumentNullException.ThrowIfNull(key);
        if (!File.Exists(pytorchFile)) throw new FileNotFoundException($"{pytorchFile} not found", pytorchFile);
        using var network = Architectures.Create(architecture);
        var stateDict = PyTorchArchive.ReadStateDict(pytorchFile, limits);
        var tensors = MapNames(stateDict.Tensors);
        string? note = null;
        if (SequentialNames.IsSequential(tensors) && !tensors.All(t => network.state_dict().ContainsKey(t.Name)))
        {
            SequentialNames.Mapping mapping;
            try
            {
                mapping = SequentialNames.Map(tensors, network, architecture);
            }
            catch (PyTorchFormatException e)
            {
                var fits = Architectures.Names.Where(name => name != architecture && Fits(tensors, name)).ToList();
                throw new PyTorchFormatException(fits.Count == 0 ? e.Message : $"{e.Message}; it fits {string.Join(", ", fits.Select(f => $"{f} (--arch {f})"))}");
            }
            (tensors, note) = (mapping.Tensors, mapping.Note);
        }
        var weights = Safetensors.Parse(Safetensors.Serialize(tensors.Select(t => SafetensorsTensor.Float32(t.Name, t.Shape, t.Values))));
        var problems = ModelWeights.Mismatches(network, weights);
        if (problems.Count > 0)
            throw new PyTorchFormatException($"the state_dict does not fit architecture {architecture}: {string.Join("; ", problems)}");
        ModelWeights.Load(network, weights);

        string digest;
        using (var stream = File.OpenRead(pytorchFile)) digest = Convert.ToHexStringLower(SHA256.HashData(stream));
        var source = new ImportSource(Path.GetFileName(pytorchFile), digest, ModelFileKinds.Describe(ModelFileKind.PyTorchZip),
            stateDict.Globals.Select(g => g.FullName).Distinct().Order(StringComparer.Ordinal).ToList());
        var manifest = ModelPackage.Write(packageDirectory, architecture, network, new ModelPackage.Provenance(null, null, null, null, source), key);
        return new PyTorchImportResult(manifest, stateDict.Tensors.Select(t => t.Name).ToList(), stateDict.Globals, note);
    }

    private static bool Fits(IReadOnlyList<PyTorchTensor> tensors, string architecture)
    {
        using var candidate = Architectures.Create(architecture);
        try
        {
            SequentialNames.Map(tensors, candidate, architecture);
            return true;
        }
        catch (PyTorchFormatException)
        {
            return false;
        }
    }

    /// <summary>Drops the "module." prefix that nn.DataParallel adds to every name.</summary>
    private static IReadOnlyList<PyTorchTensor> MapNames(IReadOnlyList<PyTorchTensor> tensors)
    {
        const string parallelPrefix = "module.";
        return tensors.All(t => t.Name.StartsWith(parallelPrefix, StringComparison.Ordinal))
            ? tensors.Select(t => t with { Name = t.Name[parallelPrefix.Length..] }).ToList()
            : tensors;
    }
}
