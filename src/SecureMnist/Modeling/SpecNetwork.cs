using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// A network built from an <see cref="ArchitectureSpec"/>: its layers are registered as 0, 1, 2, ... so its state_dict names are an
/// nn.Sequential's ("0.weight", "3.running_mean", ...). The input scaling, when the spec has one, runs inside forward, so attacks and the
/// service keep working in [0, 1] pixel space. Its features are the input of the last Linear layer.
/// </summary>
public sealed class SpecNetwork : Module<Tensor, Tensor>, IFeatureExtractor
{
    private readonly Module<Tensor, Tensor>[] layers;
    private readonly int lastLinear;

    public SpecNetwork(ArchitectureSpec spec) : base(nameof(SpecNetwork))
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate(); // bounds the size before anything is allocated
        Spec = spec;
        layers = [.. spec.Layers.Select(Create)];
        for (var i = 0; i < layers.Length; i++) register_module(i.ToString(System.Globalization.CultureInfo.InvariantCulture), layers[i]);
        lastLinear = spec.Layers.Select((l, i) => (l, i)).Last(p => p.l.Type == "Linear").i;
    }

    public ArchitectureSpec Spec { get; }

    public Tensor Features(Tensor input)
    {
        using var scope = NewDisposeScope();
        return Run(input, 0, lastLinear).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return Run(Run(input, 0, lastLinear), lastLinear, layers.Length, scaled: true).MoveToOuterDisposeScope();
    }

    private Tensor Run(Tensor input, int from, int to, bool scaled = false)
    {
        var x = !scaled && Spec.Normalize is { } n ? (input - n.Mean) / n.Std : input;
        for (var i = from; i < to; i++) x = layers[i].call(x);
        return x;
    }

    private static Module<Tensor, Tensor> Create(LayerSpec layer) => layer.Type switch
    {
        "Conv2d" => Conv2d(layer.InChannels!.Value, layer.OutChannels!.Value, layer.KernelSize!.Value, stride: layer.Stride ?? 1, padding: layer.Padding ?? 0, bias: layer.Bias ?? true),
        "Linear" => Linear(layer.InFeatures!.Value, layer.OutFeatures!.Value, hasBias: layer.Bias ?? true),
        "BatchNorm2d" => BatchNorm2d(layer.NumFeatures!.Value, eps: layer.Eps ?? 1e-5, momentum: layer.Momentum ?? 0.1),
        "MaxPool2d" => MaxPool2d(layer.KernelSize!.Value, stride: layer.Stride ?? layer.KernelSize!.Value, padding: layer.Padding ?? 0),
        "AvgPool2d" => AvgPool2d(layer.KernelSize!.Value, stride: layer.Stride ?? layer.KernelSize!.Value, padding: layer.Padding ?? 0),
        "Flatten" => Flatten(),
        "Dropout" => Dropout(layer.P ?? 0.5),
        "ReLU" => ReLU(),
        "Tanh" => Tanh(),
        _ => throw new ArchitectureSpecException($"layer type '{layer.Type}' is not supported"),
    };
}
