using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Security;

/// <summary>Moves a network's state between TorchSharp and safetensors, by weight name.</summary>
public static class ModelWeights
{
    public static IReadOnlyList<SafetensorsTensor> Export(Module<Tensor, Tensor> model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var tensors = new List<SafetensorsTensor>();
        foreach (var (name, value) in model.state_dict())
        {
            using var contiguous = value.detach().contiguous().to(ScalarType.Float32);
            tensors.Add(SafetensorsTensor.Float32(name, value.shape, contiguous.data<float>().ToArray()));
        }
        return tensors;
    }

    /// <summary>Checks that the file holds exactly the network's tensors, with its shapes; returns the problems found.</summary>
    public static IReadOnlyList<string> Mismatches(Module<Tensor, Tensor> model, SafetensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var problems = new List<string>();
        var expected = model.state_dict();
        foreach (var (name, value) in expected)
        {
            var entry = file.Entries.FirstOrDefault(e => e.Name == name);
            if (entry is null) { problems.Add($"tensor '{name}' is missing"); continue; }
            if (entry.DType != "F32") problems.Add($"tensor '{name}' is {entry.DType}, expected F32");
            if (!entry.Shape.SequenceEqual(value.shape))
                problems.Add($"tensor '{name}' has shape [{string.Join(",", entry.Shape)}], the architecture needs [{string.Join(",", value.shape)}]");
        }
        foreach (var entry in file.Entries.Where(e => !expected.ContainsKey(e.Name)))
            problems.Add($"tensor '{entry.Name}' is not part of the architecture");
        return problems;
    }

    /// <summary>Copies the file's tensors into the network; call only after <see cref="Mismatches"/> found none.</summary>
    public static void Load(Module<Tensor, Tensor> model, SafetensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var problems = Mismatches(model, file);
        if (problems.Count > 0) throw new SafetensorsException(string.Join("; ", problems));
        using var noGrad = no_grad();
        foreach (var (name, value) in model.state_dict())
        {
            var entry = file[name];
            using var source = tensor(file.ReadFloat32(entry), entry.Shape, ScalarType.Float32);
            value.copy_(source);
        }
    }
}
