using System.Text.RegularExpressions;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Interop;

/// <summary>
/// Reads an <c>nn.Sequential</c> state_dict ("0.weight", "0.bias", "2.weight", ...) as one of our architectures: the Sequential's
/// layers with tensors are paired, in order, with the architecture's modules with tensors, and every tensor's name and shape must agree.
/// Layers without tensors (activations, pooling, dropout, flatten) and the input normalisation are not in a state_dict, so they
/// cannot be checked: the mapping says so in <see cref="Mapping.Note"/>.
/// </summary>
public static partial class SequentialNames
{
    /// <summary>A Sequential read as an architecture: the renamed tensors and what the reading assumed.</summary>
    public sealed record Mapping(IReadOnlyList<PyTorchTensor> Tensors, string Note);

    [GeneratedRegex(@"^(?<index>\d+)\.(?<tensor>[A-Za-z_]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex SequentialName();

    /// <summary>True when every name is a Sequential's (a layer index, a dot, a tensor name).</summary>
    public static bool IsSequential(IReadOnlyList<PyTorchTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return tensors.Count > 0 && tensors.All(t => SequentialName().IsMatch(t.Name));
    }

    /// <summary>
    /// The tensors renamed onto <paramref name="network"/>'s names; throws <see cref="PyTorchFormatException"/> naming the first layer
    /// that does not fit.
    /// </summary>
    public static Mapping Map(IReadOnlyList<PyTorchTensor> tensors, Module<Tensor, Tensor> network, string architecture)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(network);
        if (!IsSequential(tensors)) throw new ArgumentException("not an nn.Sequential state_dict", nameof(tensors));
        var layers = tensors.GroupBy(t => int.Parse(SequentialName().Match(t.Name).Groups["index"].Value, System.Globalization.CultureInfo.InvariantCulture))
            .OrderBy(g => g.Key).Select(g => new FileLayer($"{g.Key}", $"layer {g.Key}", g.ToList())).ToList();
        var pairs = Pair(layers, network, architecture, $"the nn.Sequential has {layers.Count} layers with weights (indices {string.Join(", ", layers.Select(l => l.Prefix))})");
        return new Mapping(pairs.Tensors,
            $"an nn.Sequential state_dict, read as {architecture} by matching its layers with weights in order and shape ({pairs.Description}). " +
            $"Layers without weights (activations, pooling, dropout, flatten) and the input normalisation are not in a state_dict and are taken to be {architecture}'s: " +
            $"check the model was built and its inputs normalised as {architecture}'s are, or its predictions will differ");
    }

    /// <summary>
    /// Any state_dict's tensors renamed onto <paramref name="network"/>'s: grouped by module (the name up to its last dot) in the file's
    /// order, which is the order the modules were registered in, and paired with the network's modules with tensors, names and shapes checked.
    /// </summary>
    public static Mapping MapByOrder(IReadOnlyList<PyTorchTensor> tensors, Module<Tensor, Tensor> network, string architecture)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(network);
        var layers = tensors.GroupBy(t => t.Name[..Math.Max(0, t.Name.LastIndexOf('.'))])
            .Select(g => new FileLayer(g.Key, $"module '{g.Key}'", g.ToList())).ToList();
        var pairs = Pair(layers, network, architecture, $"the state_dict has {layers.Count} modules with tensors ({string.Join(", ", layers.Select(l => l.Prefix))})");
        return new Mapping(pairs.Tensors,
            $"the state_dict's modules were paired, in the file's order, with {architecture}'s layers with weights ({pairs.Description}), every name and shape agreeing; " +
            "the file's order is the order its modules were registered in, which is the order they run in for a plain CNN");
    }

    private sealed record FileLayer(string Prefix, string Label, List<PyTorchTensor> Tensors);

    private static (List<PyTorchTensor> Tensors, string Description) Pair(List<FileLayer> layers, Module<Tensor, Tensor> network, string architecture, string counted)
    {
        var modules = network.state_dict()
            .Select(p => (Module: p.Key[..Math.Max(0, p.Key.LastIndexOf('.'))], Tensor: p.Key[(p.Key.LastIndexOf('.') + 1)..], Shape: p.Value.shape))
            .GroupBy(p => p.Module).Select(g => (Module: g.Key, Tensors: g.ToList())).ToList();
        if (layers.Count != modules.Count)
            throw new PyTorchFormatException($"{counted}; {architecture} has {modules.Count} ({string.Join(", ", modules.Select(m => m.Module))})");
        var renamed = new List<PyTorchTensor>();
        for (var k = 0; k < layers.Count; k++)
        {
            var layer = layers[k];
            var (module, expected) = modules[k];
            foreach (var (_, name, shape) in expected)
            {
                var source = layer.Tensors.FirstOrDefault(t => t.Name == $"{layer.Prefix}.{name}")
                    ?? throw new PyTorchFormatException($"{layer.Label} has no '{name}', which {architecture}'s {module} needs");
                if (!source.Shape.SequenceEqual(shape))
                    throw new PyTorchFormatException($"{layer.Label}'s {name} has shape [{string.Join(",", source.Shape)}]; {architecture}'s {module}.{name} is [{string.Join(",", shape)}]");
                renamed.Add(source with { Name = $"{module}.{name}" });
            }
            if (layer.Tensors.FirstOrDefault(t => expected.All(e => $"{layer.Prefix}.{e.Tensor}" != t.Name)) is { } extra)
                throw new PyTorchFormatException($"{layer.Label}'s '{extra.Name}' has no place in {architecture}'s {module}");
        }
        return (renamed, string.Join(", ", layers.Select((l, k) => $"{l.Prefix} -> {modules[k].Module}")));
    }
}
