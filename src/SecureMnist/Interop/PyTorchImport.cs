using System.Security.Cryptography;
using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Security;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Interop;

/// <summary>What an import produced: the package's manifest and the tensors as they were named in the file.</summary>
/// <param name="Note">What the import assumed, when it had to (an nn.Sequential read as one of our architectures); null otherwise.</param>
/// <param name="Inference">When the layer list was inferred from an nn.Sequential's shapes: the list and every reading weighed.</param>
public sealed record PyTorchImportResult(ModelManifest Manifest, IReadOnlyList<string> SourceNames, IReadOnlyList<PickleGlobal> Globals, string? Note = null,
    SpecInferenceResult? Inference = null);

/// <summary>
/// Turns a PyTorch state_dict file into a signed package: read through the restricted unpickler, names mapped onto
/// one of our architectures (the seeds' PyTorch CNN uses seed-cnn's names; an nn.Sequential is matched layer by layer, see
/// <see cref="SequentialNames"/>), every shape checked, then written like any trained model.
/// </summary>
public static class PyTorchImport
{
    /// <param name="inferWith">When given, an nn.Sequential that fits none of <paramref name="architecture"/>'s layers has its layer list
    /// inferred (<see cref="SpecInference"/>), scored on these labelled images, instead of being refused.</param>
    public static PyTorchImportResult Import(string pytorchFile, string architecture, string packageDirectory, SigningKey key, PyTorchArchiveLimits? limits = null,
        Func<LabeledImages>? inferWith = null)
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
                if (fits.Count == 0 && inferWith is not null)
                {
                    return Inferred(pytorchFile, stateDict, tensors, inferWith(), packageDirectory, key, $"it is not {architecture} ({e.Message}); ", null);
                }
                throw new PyTorchFormatException(fits.Count == 0 ? $"{e.Message}; to infer its layer list from the shapes, give --arch-spec infer" : $"{e.Message}; it fits {string.Join(", ", fits.Select(f => $"{f} (--arch {f})"))}");
            }
            (tensors, note) = (mapping.Tensors, mapping.Note);
        }
        return Package(pytorchFile, architecture, network, tensors, stateDict, packageDirectory, key, note);
    }

    /// <summary>
    /// Imports a state_dict as the network a layer list describes (<c>--arch-spec</c>). An nn.Sequential's tensors keep their names, which
    /// must sit at the spec's layers with tensors; any other naming (a module with named children, nested Sequentials) is paired layer by
    /// layer, in the file's order, with the spec's layers with tensors, every name and shape checked, and the result says so.
    /// </summary>
    public static PyTorchImportResult Import(string pytorchFile, ArchitectureSpec spec, string packageDirectory, SigningKey key, PyTorchArchiveLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(pytorchFile);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(key);
        if (!File.Exists(pytorchFile)) throw new FileNotFoundException($"{pytorchFile} not found", pytorchFile);
        using var network = new SpecNetwork(spec);
        var stateDict = PyTorchArchive.ReadStateDict(pytorchFile, limits);
        var tensors = MapNames(stateDict.Tensors);
        var expected = network.state_dict();
        string note;
        if (tensors.All(t => expected.ContainsKey(t.Name)))
            note = $"read as the spec's network: {spec.Describe()}";
        else if (SequentialNames.IsSequential(tensors))
        {
            var fileLayers = tensors.Select(t => t.Name[..t.Name.IndexOf('.', StringComparison.Ordinal)]).Distinct().ToList();
            var specLayers = spec.Layers.Select((l, i) => (l, i)).Where(p => p.l.HasTensors).Select(p => $"{p.i} {p.l.Type}").ToList();
            throw new PyTorchFormatException($"the nn.Sequential holds tensors at layers {string.Join(", ", fileLayers)}; the spec has them at {string.Join(", ", specLayers)}. " +
                "Every layer of the Sequential, with or without weights (ReLU, pooling, Flatten, Dropout), needs its place in the spec");
        }
        else
        {
            var mapping = SequentialNames.MapByOrder(tensors, network, "the spec's network");
            (tensors, note) = (mapping.Tensors, $"{mapping.Note}; the spec: {spec.Describe()}");
        }
        return Package(pytorchFile, Architectures.Custom, network, tensors, stateDict, packageDirectory, key, note);
    }

    /// <summary>
    /// Imports an nn.Sequential state_dict with the layer list its shapes give (<see cref="SpecInference"/>): the readings the shapes allow
    /// are scored on <paramref name="check"/>, and the import is refused, naming the leading ones, unless one is clearly best.
    /// </summary>
    public static PyTorchImportResult ImportInferred(string pytorchFile, LabeledImages check, string packageDirectory, SigningKey key, PyTorchArchiveLimits? limits = null,
        Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(pytorchFile);
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(key);
        if (!File.Exists(pytorchFile)) throw new FileNotFoundException($"{pytorchFile} not found", pytorchFile);
        var stateDict = PyTorchArchive.ReadStateDict(pytorchFile, limits);
        return Inferred(pytorchFile, stateDict, MapNames(stateDict.Tensors), check, packageDirectory, key, "", progress);
    }

    private static PyTorchImportResult Inferred(string pytorchFile, PyTorchStateDict stateDict, IReadOnlyList<PyTorchTensor> tensors, LabeledImages check,
        string packageDirectory, SigningKey key, string why, Action<int, int>? progress)
    {
        var inference = SpecInference.Infer(tensors, check, progress);
        using var network = new SpecNetwork(inference.Spec);
        return Package(pytorchFile, Architectures.Custom, network, tensors, stateDict, packageDirectory, key, why + inference.Note) with { Inference = inference };
    }

    private static PyTorchImportResult Package(string pytorchFile, string architecture, Module<Tensor, Tensor> network, IReadOnlyList<PyTorchTensor> tensors,
        PyTorchStateDict stateDict, string packageDirectory, SigningKey key, string? note)
    {
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
