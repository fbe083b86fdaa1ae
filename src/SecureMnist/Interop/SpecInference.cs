using System.Globalization;
using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Interop;

/// <summary>One way of reading an nn.Sequential state_dict as a network: its mean cross-entropy on the check images and the share it classifies right.</summary>
public sealed record SpecCandidate(ArchitectureSpec Spec, double Loss, double Accuracy);

/// <summary>The layer list inferred for an nn.Sequential state_dict, what the inference assumed, and every candidate it weighed, best first.</summary>
public sealed record SpecInferenceResult(ArchitectureSpec Spec, string Note, IReadOnlyList<SpecCandidate> Candidates);

/// <summary>
/// Infers the layer list of an nn.Sequential from its state_dict. The tensors give the layers with weights (a 4-D weight is a Conv2d,
/// a 2-D one a Linear, running statistics a BatchNorm2d) and their sizes; the gaps in the indices give how many layers without weights
/// sit between them. What the shapes cannot give is enumerated: how many of a gap's layers pool (2x2) and which holds the Flatten (the
/// sizes must reach the first Linear's in_features), each convolution's padding (none or "same"), the activation (ReLU or Tanh), the
/// pooling (max or average) and the input scaling (none, MNIST's mean and std, or 0.5 and 0.5). In a gap the activation comes first,
/// then the pooling, then Dropout for any layer left over, then the Flatten, as PyTorch's examples write them. Every candidate is loaded
/// with the weights and scored on labelled check images by mean cross-entropy (accuracy moves too little: a trained CNN fed the wrong
/// scaling or pooling still classifies most digits, while its loss rises several-fold). The lowest is taken only when every reading
/// that gives different logits has at least <see cref="LossRatio"/> times its loss. Otherwise the reading is ambiguous and refused with
/// the leading candidates, so a user writes the list.
/// </summary>
public static class SpecInference
{
    /// <summary>Structures (pooling, flatten and padding placements) weighed at most; more is refused as too ambiguous to score.</summary>
    public const int MaxStructures = 64;

    /// <summary>What <c>--arch-spec</c> takes to infer the list instead of reading one.</summary>
    public const string Keyword = "infer";

    /// <summary>How many test images the readings are scored on.</summary>
    public const int CheckImages = 1000;

    /// <summary>How many times the chosen reading's loss every reading with different logits must have at least.</summary>
    public const double LossRatio = 1.25;

    /// <summary>The input scalings tried: raw [0, 1] pixels, MNIST's mean and standard deviation, and [-1, 1].</summary>
    public static IReadOnlyList<InputScaling?> Scalings { get; } = [null, new InputScaling(0.1307, 0.3081), new InputScaling(0.5, 0.5)];

    private const string Activation = "<activation>";
    private const string Pool = "<pool>";

    private sealed record TensorLayer(int Index, LayerSpec Layer);

    /// <summary>Every layer list the state_dict's shapes allow, before the activation, pooling and scaling are chosen (placeholders).</summary>
    public static IReadOnlyList<ArchitectureSpec> Candidates(IReadOnlyList<PyTorchTensor> tensors)
    {
        var layers = TensorLayers(tensors);
        var firstLinear = layers.FindIndex(l => l.Layer.Type == "Linear");
        if (firstLinear < 0) throw new PyTorchFormatException("the nn.Sequential has no Linear layer (no 2-D weight), so it cannot end in 10 logits");
        if (layers.Skip(firstLinear).FirstOrDefault(l => l.Layer.Type != "Linear") is { } late)
            throw new PyTorchFormatException($"layer {late.Index} ({late.Layer.Type}) comes after a Linear; a plain CNN's convolutions and BatchNorm2d come before its first Linear (BatchNorm1d is not supported)");
        var flattenGap = Gap(layers, firstLinear);
        if (flattenGap == 0)
            throw new PyTorchFormatException($"layer {layers[firstLinear].Index} (Linear) follows layer {layers[firstLinear].Index - 1} directly; an nn.Sequential needs an nn.Flatten between its image layers and its first Linear");

        var structures = new List<List<LayerSpec>>();
        void Walk(int k, long[] shape, List<LayerSpec> sofar)
        {
            if (structures.Count > MaxStructures) return;
            if (k == layers.Count)
            {
                structures.Add(sofar);
                return;
            }
            var slots = Gap(layers, k);
            var flatten = k == firstLinear ? 1 : 0;
            var image = k <= firstLinear;
            for (var pools = 0; pools <= (image ? slots - flatten : 0); pools++)
            {
                var rest = slots - flatten - pools;
                var gap = new List<LayerSpec>();
                var current = shape;
                if (rest > 0 && k > 0) gap.Add(new LayerSpec(Activation));
                var fits = true;
                for (var p = 0; p < pools; p++)
                {
                    if (current.Length != 3 || current[1] < 2 || current[2] < 2) fits = false;
                    else current = [current[0], current[1] / 2, current[2] / 2];
                    gap.Add(new LayerSpec(Pool, KernelSize: 2));
                }
                if (!fits) break; // more pooling cannot fit either
                for (var d = k > 0 && rest > 0 ? 1 : 0; d < rest; d++) gap.Add(new LayerSpec("Dropout"));
                if (flatten == 1)
                {
                    gap.Add(new LayerSpec("Flatten"));
                    current = [current.Aggregate(1L, (a, b) => a * b)];
                }
                var layer = layers[k].Layer;
                IEnumerable<int?> paddings = layer.Type == "Conv2d" && layer.KernelSize / 2 > 0 ? [null, layer.KernelSize / 2] : [null];
                foreach (var padding in paddings)
                {
                    var placed = layer with { Padding = padding };
                    if (Next(current, placed) is not { } next) continue;
                    Walk(k + 1, next, [.. sofar, .. gap, placed]);
                }
            }
        }
        Walk(0, [1, 28, 28], []);
        if (structures.Count > MaxStructures)
            throw new PyTorchFormatException($"the shapes allow more than {MaxStructures} placements of pooling, padding and Flatten: too many to tell apart; write the layer list (--arch-spec)");
        if (structures.Count == 0)
            throw new PyTorchFormatException($"no placement of 2x2 pooling, padding (none or same) and Flatten takes a 1x28x28 image to layer {layers[firstLinear].Index}'s {layers[firstLinear].Layer.InFeatures} input features; write the layer list (--arch-spec)");
        return [.. structures.Select(s => new ArchitectureSpec(s))];
    }

    /// <summary>
    /// Scores every reading on <paramref name="check"/> and returns the best, or throws <see cref="PyTorchFormatException"/> naming the
    /// leading candidates when the best does not beat every differently predicting one by <see cref="Margin"/>.
    /// </summary>
    public static SpecInferenceResult Infer(IReadOnlyList<PyTorchTensor> tensors, LabeledImages check, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(check);
        if (check.Count == 0) throw new ArgumentException("no check images", nameof(check));
        var structures = Candidates(tensors);
        var specs = structures.SelectMany(Choices).DistinctBy(s => s.Describe()).ToList();
        var weights = Safetensors.Parse(Safetensors.Serialize(tensors.Select(t => SafetensorsTensor.Float32(t.Name, t.Shape, t.Values))));
        using var images = check.ImagesTensor();
        var scored = new List<(ArchitectureSpec Spec, double Loss, double Accuracy, float[] Logits)>();
        using var target = check.LabelsTensor();
        for (var i = 0; i < specs.Count; i++)
        {
            using var network = new SpecNetwork(specs[i]);
            if (ModelWeights.Mismatches(network, weights) is { Count: > 0 } problems)
                throw new PyTorchFormatException($"the state_dict does not fit the inferred layers: {string.Join("; ", problems)}");
            ModelWeights.Load(network, weights);
            network.eval();
            using (no_grad())
            {
                using var logits = network.call(images);
                using var loss = nn.functional.cross_entropy(logits, target);
                using var right = logits.argmax(1).eq(target).sum();
                var value = loss.item<float>();
                scored.Add((specs[i], float.IsFinite(value) ? value : double.PositiveInfinity, right.item<long>() / (double)check.Count, logits.data<float>().ToArray()));
            }
            progress?.Invoke(i + 1, specs.Count);
        }
        scored.Sort((a, b) => a.Loss.CompareTo(b.Loss));
        var best = scored[0];
        var rival = scored.Skip(1).FirstOrDefault(s => s.Logits.Where((v, n) => Math.Abs(v - best.Logits[n]) > 1e-4f).Any());
        var candidates = scored.Select(s => new SpecCandidate(s.Spec, s.Loss, s.Accuracy)).ToList();
        string Score(double loss, double accuracy) => string.Create(CultureInfo.InvariantCulture, $"loss {loss:F3}, {accuracy * 100:F1}% right");
        if (rival.Spec is not null && !(rival.Loss >= best.Loss * LossRatio))
        {
            var leading = scored.Take(3).Select((s, n) => $"({n + 1}) {Score(s.Loss, s.Accuracy)}: {s.Spec.Describe()}");
            throw new PyTorchFormatException($"the layer list cannot be told from the shapes: of {specs.Count} readings, none scores clearly best on the first {check.Count:N0} test images " +
                $"(the runner-up's loss must be {LossRatio}x the best's): {string.Join("; ", leading)}. Write the layer list the model was built with (--arch-spec FILE)");
        }
        var note = $"the layer list was inferred from the nn.Sequential's shapes: {best.Spec.Describe()}. " +
            $"Of {specs.Count} readings (activation ReLU or Tanh, max or average pooling, padding, Flatten's place, input scaling) it scores best on the first {check.Count:N0} test images ({Score(best.Loss, best.Accuracy)}); " +
            (rival.Spec is null ? "every other reading gives the same logits. " : $"the runner-up, {Score(rival.Loss, rival.Accuracy)}: {rival.Spec.Describe()}. ") +
            "Layers without weights are placed as PyTorch's examples write them (activation, pooling, Dropout, Flatten); check the list, and give --arch-spec if the model differs";
        return new SpecInferenceResult(best.Spec, note, candidates);
    }

    /// <summary>A structure with its placeholders filled every way: activation, pooling kind, input scaling.</summary>
    private static IEnumerable<ArchitectureSpec> Choices(ArchitectureSpec structure)
    {
        foreach (var activation in new[] { "ReLU", "Tanh" })
            foreach (var pool in new[] { "MaxPool2d", "AvgPool2d" })
                foreach (var scaling in Scalings)
                {
                    var layers = structure.Layers.Select(l => l.Type switch
                    {
                        Activation => new LayerSpec(activation),
                        Pool => l with { Type = pool },
                        _ => l,
                    }).ToList();
                    var spec = new ArchitectureSpec(layers, scaling);
                    spec.Validate();
                    yield return spec;
                }
    }

    /// <summary>The layers with weights, by their index in the Sequential.</summary>
    private static List<TensorLayer> TensorLayers(IReadOnlyList<PyTorchTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!SequentialNames.IsSequential(tensors))
            throw new PyTorchFormatException($"a layer list is inferred only for an nn.Sequential's state_dict (names 0.weight, 0.bias, 3.weight, ...); this one names its tensors {string.Join(", ", tensors.Take(3).Select(t => t.Name))}...: write the layer list (--arch-spec FILE)");
        var layers = new List<TensorLayer>();
        foreach (var group in tensors.GroupBy(t => int.Parse(t.Name[..t.Name.IndexOf('.', StringComparison.Ordinal)], CultureInfo.InvariantCulture)).OrderBy(g => g.Key))
        {
            var where = $"layer {group.Key}";
            if (group.Key >= ArchitectureSpec.MaxLayers) throw new PyTorchFormatException($"{where}: a spec has at most {ArchitectureSpec.MaxLayers} layers");
            var named = group.ToDictionary(t => t.Name[(t.Name.IndexOf('.', StringComparison.Ordinal) + 1)..], StringComparer.Ordinal);
            var weight = named.GetValueOrDefault("weight");
            if (named.TryGetValue("running_mean", out var mean))
            {
                if (weight is null) throw new PyTorchFormatException($"{where} is a BatchNorm without weights (affine=False), which is not supported");
                layers.Add(new TensorLayer(group.Key, new LayerSpec("BatchNorm2d", NumFeatures: checked((int)mean.Shape[0]))));
                continue;
            }
            var bias = named.ContainsKey("bias") ? (bool?)null : false;
            layers.Add(weight?.Shape switch
            {
                [var o, var i, var h, var w] when h == w => new TensorLayer(group.Key, new LayerSpec("Conv2d", InChannels: Int(i, where), OutChannels: Int(o, where), KernelSize: Int(h, where), Bias: bias)),
                [_, _, var h, var w] => throw new PyTorchFormatException($"{where}'s kernel is {h}x{w}; only square kernels are supported"),
                [var o, var i] => new TensorLayer(group.Key, new LayerSpec("Linear", InFeatures: Int(i, where), OutFeatures: Int(o, where), Bias: bias)),
                null => throw new PyTorchFormatException($"{where} has no weight ({string.Join(", ", named.Keys)})"),
                var shape => throw new PyTorchFormatException($"{where}'s weight is [{string.Join(", ", shape)}]: neither a Conv2d (4-D) nor a Linear (2-D)"),
            });
        }
        return layers;
    }

    private static int Int(long value, string where) =>
        value is >= 1 and <= 28 * 28 * 64 ? (int)value : throw new PyTorchFormatException($"{where} has a dimension of {value:N0}, outside 1-{28 * 28 * 64:N0}");

    /// <summary>How many layers without weights sit before the k-th layer with weights.</summary>
    private static int Gap(List<TensorLayer> layers, int k) => layers[k].Index - (k == 0 ? 0 : layers[k - 1].Index + 1);

    /// <summary>The shape after a layer with weights, or null when it does not fit.</summary>
    private static long[]? Next(long[] shape, LayerSpec layer)
    {
        switch (layer.Type)
        {
            case "Conv2d":
                if (shape.Length != 3 || shape[0] != layer.InChannels) return null;
                var padding = layer.Padding ?? 0;
                var size = shape[1] + 2 * padding - layer.KernelSize!.Value + 1;
                return size < 1 ? null : [layer.OutChannels!.Value, size, shape[2] + 2 * padding - layer.KernelSize.Value + 1];
            case "BatchNorm2d":
                return shape.Length == 3 && shape[0] == layer.NumFeatures ? shape : null;
            default:
                return shape.Length == 1 && shape[0] == layer.InFeatures ? [layer.OutFeatures!.Value] : null;
        }
    }
}
