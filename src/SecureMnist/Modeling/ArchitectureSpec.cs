using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SecureMnist.Modeling;

/// <summary>
/// One layer of a plain feed-forward network, with PyTorch's class and argument names (Conv2d's in_channels, kernel_size, ...), so a
/// spec reads like the nn.Sequential it describes. Arguments a type does not take stay null.
/// </summary>
public sealed record LayerSpec(
    string Type,
    [property: JsonPropertyName("in_channels")] int? InChannels = null,
    [property: JsonPropertyName("out_channels")] int? OutChannels = null,
    [property: JsonPropertyName("kernel_size")] int? KernelSize = null,
    [property: JsonPropertyName("stride")] int? Stride = null,
    [property: JsonPropertyName("padding")] int? Padding = null,
    [property: JsonPropertyName("in_features")] int? InFeatures = null,
    [property: JsonPropertyName("out_features")] int? OutFeatures = null,
    [property: JsonPropertyName("num_features")] int? NumFeatures = null,
    [property: JsonPropertyName("eps")] double? Eps = null,
    [property: JsonPropertyName("momentum")] double? Momentum = null,
    [property: JsonPropertyName("p")] double? P = null,
    [property: JsonPropertyName("bias")] bool? Bias = null)
{
    /// <summary>Whether the layer holds tensors in a state_dict.</summary>
    [JsonIgnore]
    public bool HasTensors => Type is "Conv2d" or "Linear" or "BatchNorm2d";

    /// <summary>The layer as PyTorch would print it, e.g. <c>Conv2d(1, 6, kernel_size=5, padding=2)</c>.</summary>
    public override string ToString() => Type switch
    {
        "Conv2d" => $"Conv2d({InChannels}, {OutChannels}, kernel_size={KernelSize}{(Stride is > 1 ? $", stride={Stride}" : "")}{(Padding is > 0 ? $", padding={Padding}" : "")}{(Bias == false ? ", bias=False" : "")})",
        "Linear" => $"Linear({InFeatures}, {OutFeatures}{(Bias == false ? ", bias=False" : "")})",
        "BatchNorm2d" => $"BatchNorm2d({NumFeatures})",
        "MaxPool2d" or "AvgPool2d" => $"{Type}({KernelSize}{(Stride is { } s && s != KernelSize ? $", stride={s}" : "")}{(Padding is > 0 ? $", padding={Padding}" : "")})",
        "Dropout" => string.Create(CultureInfo.InvariantCulture, $"Dropout({P ?? 0.5})"),
        _ => $"{Type}()",
    };
}

/// <summary>The input scaling a network expects before its first layer: (x - Mean) / Std on [0, 1] pixels.</summary>
public sealed record InputScaling(double Mean, double Std);

/// <summary>
/// A network given as a layer list (<c>import --arch-spec</c>): what a state_dict cannot say (activations, pooling, flatten, dropout, the
/// input scaling) is stated here, and the spec is recorded in the signed manifest so the package rebuilds the same network. Its layers
/// are named 0, 1, 2, ... as an nn.Sequential's are. <see cref="Validate"/> walks the shapes from a 1x28x28 image to 10 logits and
/// bounds the size before anything is allocated.
/// </summary>
public sealed record ArchitectureSpec(IReadOnlyList<LayerSpec> Layers, InputScaling? Normalize = null)
{
    public const int MaxLayers = 64;
    public const int MaxWidth = 4096;
    public const long MaxParameters = 64L << 20;
    public const int MaxFileBytes = 64 << 10;

    private static readonly Dictionary<string, string[]> Arguments = new(StringComparer.Ordinal)
    {
        ["Conv2d"] = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "bias"],
        ["Linear"] = ["in_features", "out_features", "bias"],
        ["BatchNorm2d"] = ["num_features", "eps", "momentum"],
        ["MaxPool2d"] = ["kernel_size", "stride", "padding"],
        ["AvgPool2d"] = ["kernel_size", "stride", "padding"],
        ["Dropout"] = ["p"],
        ["ReLU"] = [],
        ["Tanh"] = [],
        ["Flatten"] = [],
    };

    /// <summary>The layer types a spec may use.</summary>
    public static IReadOnlyCollection<string> LayerTypes => Arguments.Keys;

    /// <summary>Reads a spec file: <c>{"normalize": {"mean": m, "std": s} (optional), "layers": [{"type": "Conv2d", ...}, ...]}</c>.</summary>
    public static ArchitectureSpec Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"architecture spec {path} not found", path);
        var length = new FileInfo(path).Length;
        if (length > MaxFileBytes) throw new ArchitectureSpecException($"{path} is {length:N0} bytes; a spec is at most {MaxFileBytes:N0}");
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (ArchitectureSpecException e)
        {
            throw new ArchitectureSpecException($"{path}: {e.Message}");
        }
    }

    public static ArchitectureSpec Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new ArchitectureSpecException($"not valid JSON ({e.Message})");
        }
        if (root is not JsonObject top) throw new ArchitectureSpecException("a spec is a JSON object with \"layers\" (and optionally \"normalize\")");
        foreach (var (key, _) in top)
            if (key is not ("layers" or "normalize")) throw new ArchitectureSpecException($"unknown field '{key}'; a spec has \"layers\" and optionally \"normalize\"");
        if (top["layers"] is not JsonArray layers) throw new ArchitectureSpecException("\"layers\" is missing or not a list");
        if (layers.Count > MaxLayers) throw new ArchitectureSpecException($"{layers.Count} layers; at most {MaxLayers}");
        InputScaling? normalize = null;
        if (top["normalize"] is JsonObject scaling)
        {
            foreach (var (key, _) in scaling)
                if (key is not ("mean" or "std")) throw new ArchitectureSpecException($"normalize: unknown field '{key}'; it has \"mean\" and \"std\"");
            normalize = new InputScaling(Number(scaling, "mean", "normalize"), Number(scaling, "std", "normalize"));
        }
        else if (top["normalize"] is not null) throw new ArchitectureSpecException("\"normalize\" is an object {\"mean\": m, \"std\": s}");
        var parsed = new List<LayerSpec>();
        for (var i = 0; i < layers.Count; i++)
        {
            var where = $"layer {i}";
            if (layers[i] is not JsonObject layer) throw new ArchitectureSpecException($"{where} is not an object");
            var type = layer["type"] is JsonValue t && t.TryGetValue<string>(out var name) ? name
                : throw new ArchitectureSpecException($"{where} has no \"type\"; one of {string.Join(", ", LayerTypes)}");
            if (!Arguments.TryGetValue(type, out var allowed))
                throw new ArchitectureSpecException($"{where}: type '{type}' is not supported; one of {string.Join(", ", LayerTypes)}");
            where = $"layer {i} ({type})";
            foreach (var (key, _) in layer)
                if (key != "type" && !allowed.Contains(key))
                    throw new ArchitectureSpecException($"{where}: unknown argument '{key}'; {(allowed.Length == 0 ? "it takes none" : $"it takes {string.Join(", ", allowed)}")}");
            parsed.Add(new LayerSpec(type,
                OptionalInt(layer, "in_channels", where), OptionalInt(layer, "out_channels", where), OptionalInt(layer, "kernel_size", where),
                OptionalInt(layer, "stride", where), OptionalInt(layer, "padding", where), OptionalInt(layer, "in_features", where),
                OptionalInt(layer, "out_features", where), OptionalInt(layer, "num_features", where), OptionalNumber(layer, "eps", where),
                OptionalNumber(layer, "momentum", where), OptionalNumber(layer, "p", where), OptionalBool(layer, "bias", where)));
        }
        var spec = new ArchitectureSpec(parsed, normalize);
        spec.Validate();
        return spec;
    }

    /// <summary>
    /// Checks every layer's arguments and walks the shapes from [1, 28, 28] to [10]; returns the parameter count (weights, biases and
    /// BatchNorm's running statistics). Throws <see cref="ArchitectureSpecException"/> naming the layer that does not fit.
    /// </summary>
    public long Validate()
    {
        if (Layers is null || Layers.Count == 0) throw new ArchitectureSpecException("the spec has no layers");
        if (Layers.Count > MaxLayers) throw new ArchitectureSpecException($"{Layers.Count} layers; at most {MaxLayers}");
        if (Normalize is { } n && (!double.IsFinite(n.Mean) || !double.IsFinite(n.Std) || n.Std <= 0 || Math.Abs(n.Mean) > 1000 || n.Std > 1000))
            throw new ArchitectureSpecException("normalize: mean must be finite and std positive (both at most 1,000)");
        long[] shape = [1, 28, 28];
        long parameters = 0;
        for (var i = 0; i < Layers.Count; i++)
        {
            var layer = Layers[i];
            var where = $"layer {i} ({layer.Type})";
            string Shape() => $"[{string.Join(", ", shape)}]";
            switch (layer.Type)
            {
                case "Conv2d":
                {
                    var (inC, outC, k) = (Required(layer.InChannels, "in_channels", where), Required(layer.OutChannels, "out_channels", where), Required(layer.KernelSize, "kernel_size", where));
                    Width(inC, "in_channels", where);
                    Width(outC, "out_channels", where);
                    if (shape.Length != 3) throw new ArchitectureSpecException($"{where} needs an image [channels, height, width]; its input is {Shape()} (a Conv2d after Flatten?)");
                    if (shape[0] != inC) throw new ArchitectureSpecException($"{where} takes {inC} input channels; its input is {Shape()}");
                    shape = Window(shape, k, layer.Stride ?? 1, layer.Padding ?? 0, where);
                    shape[0] = outC;
                    parameters += (long)outC * inC * k * k + (layer.Bias == false ? 0 : outC);
                    break;
                }
                case "Linear":
                {
                    var (inF, outF) = (Required(layer.InFeatures, "in_features", where), Required(layer.OutFeatures, "out_features", where));
                    Width(inF, "in_features", where, 28 * 28 * 64);
                    Width(outF, "out_features", where);
                    if (shape.Length != 1) throw new ArchitectureSpecException($"{where} needs a flat input; its input is {Shape()}: put a Flatten before it");
                    if (shape[0] != inF) throw new ArchitectureSpecException($"{where} takes {inF} features; its input has {shape[0]}");
                    shape = [outF];
                    parameters += (long)outF * inF + (layer.Bias == false ? 0 : outF);
                    break;
                }
                case "BatchNorm2d":
                {
                    var features = Required(layer.NumFeatures, "num_features", where);
                    if (shape.Length != 3 || shape[0] != features) throw new ArchitectureSpecException($"{where} normalises {features} channels; its input is {Shape()}");
                    if (layer.Eps is { } eps && (!double.IsFinite(eps) || eps <= 0 || eps > 1)) throw new ArchitectureSpecException($"{where}: eps must be in (0, 1]");
                    if (layer.Momentum is { } m && (!double.IsFinite(m) || m < 0 || m > 1)) throw new ArchitectureSpecException($"{where}: momentum must be in [0, 1]");
                    parameters += 4L * features + 1;
                    break;
                }
                case "MaxPool2d" or "AvgPool2d":
                {
                    var k = Required(layer.KernelSize, "kernel_size", where);
                    if (shape.Length != 3) throw new ArchitectureSpecException($"{where} needs an image input; its input is {Shape()}");
                    if (layer.Padding is { } p && 2 * p > k) throw new ArchitectureSpecException($"{where}: padding {p} is more than half the kernel ({k}), which PyTorch refuses");
                    var channels = shape[0];
                    shape = Window(shape, k, layer.Stride ?? k, layer.Padding ?? 0, where);
                    shape[0] = channels;
                    break;
                }
                case "Flatten":
                    shape = [shape.Aggregate(1L, (a, b) => a * b)];
                    break;
                case "Dropout":
                    if (layer.P is { } dropout && (!double.IsFinite(dropout) || dropout < 0 || dropout >= 1)) throw new ArchitectureSpecException($"{where}: p must be in [0, 1)");
                    break;
                case "ReLU" or "Tanh":
                    break;
                default:
                    throw new ArchitectureSpecException($"{where}: type '{layer.Type}' is not supported; one of {string.Join(", ", LayerTypes)}");
            }
            if (parameters > MaxParameters) throw new ArchitectureSpecException($"{where} brings the network to {parameters:N0} parameters; at most {MaxParameters:N0}");
        }
        if (shape.Length != 1 || shape[0] != 10)
            throw new ArchitectureSpecException($"the network ends in [{string.Join(", ", shape)}]; it must end in 10 logits (a Linear with out_features 10, after a Flatten)");
        if (Layers.LastOrDefault(l => l.Type == "Linear") is null) throw new ArchitectureSpecException("the network has no Linear layer");
        return parameters;
    }

    /// <summary>The spec as one line per layer, as PyTorch prints an nn.Sequential.</summary>
    public string Describe() =>
        $"{(Normalize is { } n ? string.Create(CultureInfo.InvariantCulture, $"(x - {n.Mean:G6}) / {n.Std:G6}, ") : "")}{string.Join(", ", Layers.Select((l, i) => $"({i}) {l}"))}";

    private static long[] Window(long[] shape, int kernel, int stride, int padding, string where)
    {
        if (kernel is < 1 or > 28) throw new ArchitectureSpecException($"{where}: kernel_size {kernel} is outside 1-28");
        if (stride is < 1 or > 28) throw new ArchitectureSpecException($"{where}: stride {stride} is outside 1-28");
        if (padding is < 0 or > 14) throw new ArchitectureSpecException($"{where}: padding {padding} is outside 0-14");
        var height = (shape[1] + 2 * padding - kernel) / stride + 1;
        var width = (shape[2] + 2 * padding - kernel) / stride + 1;
        if (shape[1] + 2 * padding < kernel || height < 1 || width < 1)
            throw new ArchitectureSpecException($"{where}: a {kernel}x{kernel} window does not fit its {shape[1]}x{shape[2]} input (padding {padding})");
        return [shape[0], height, width];
    }

    private static void Width(int value, string name, string where, int max = MaxWidth)
    {
        if (value < 1 || value > max) throw new ArchitectureSpecException($"{where}: {name} {value} is outside 1-{max:N0}");
    }

    private static int Required(int? value, string name, string where) =>
        value ?? throw new ArchitectureSpecException($"{where} needs {name}");

    private static double Number(JsonObject node, string key, string where) =>
        OptionalNumber(node, key, where) ?? throw new ArchitectureSpecException($"{where} needs {key}");

    private static double? OptionalNumber(JsonObject node, string key, string where)
    {
        if (node[key] is null) return null;
        return node[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) ? d
            : throw new ArchitectureSpecException($"{where}: {key} must be a number");
    }

    private static int? OptionalInt(JsonObject node, string key, string where)
    {
        if (node[key] is null) return null;
        if (node[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue)
            return (int)d;
        throw new ArchitectureSpecException($"{where}: {key} must be a whole number");
    }

    private static bool? OptionalBool(JsonObject node, string key, string where)
    {
        if (node[key] is null) return null;
        return node[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>()
            : throw new ArchitectureSpecException($"{where}: {key} must be true or false");
    }
}

/// <summary>A spec that cannot describe a network we can build, with what is wrong.</summary>
public sealed class ArchitectureSpecException(string message) : Exception(message);
