using SecureMnist.Privacy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// A small CNN for DP-SGD (26,010 parameters), the one of Papernot et al.'s tempered-sigmoid study and Opacus' MNIST example:
/// conv 1-16 8x8 stride 2 padding 3, max-pool 2 stride 1, conv 16-32 4x4 stride 2, max-pool 2 stride 1, fc 512-32, fc 32-10,
/// with tanh activations (bounded activations keep clipped gradients informative). No batch statistics, so each example's
/// gradient depends on that example alone, as DP-SGD's accounting requires.
/// </summary>
public sealed class DpCnn : Module<Tensor, Tensor>, IRecordingNetwork
{
    private static readonly ConvolutionGeometry First = new(8, 2, 3);
    private static readonly ConvolutionGeometry Second = new(4, 2, 0);

    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public DpCnn() : base(nameof(DpCnn))
    {
        conv1 = Conv2d(1, 16, First.Kernel, stride: First.Stride, padding: First.Padding);
        conv2 = Conv2d(16, 32, Second.Kernel, stride: Second.Stride);
        fc1 = Linear(512, 32);
        fc2 = Linear(32, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => Forward(input, null);

    /// <summary>The logits, with each trainable layer recorded for <see cref="PerSampleGradients"/>.</summary>
    public (Tensor Logits, IReadOnlyList<LayerTap> Taps) ForwardRecorded(Tensor input)
    {
        var taps = new List<LayerTap>(4);
        return (Forward(input, taps), taps);
    }

    private Tensor Forward(Tensor input, List<LayerTap>? taps)
    {
        Tensor Layer(Module<Tensor, Tensor> layer, Parameter weight, Parameter? bias, Tensor x, ConvolutionGeometry? geometry)
        {
            var y = layer.call(x);
            taps?.Add(LayerTap.Record(weight, bias, x, y, geometry));
            return y;
        }
        var x = (input - InputNormalization.Mean) / InputNormalization.StandardDeviation;
        x = functional.max_pool2d(Layer(conv1, conv1.weight!, conv1.bias, x, First).tanh(), 2, 1);
        x = functional.max_pool2d(Layer(conv2, conv2.weight!, conv2.bias, x, Second).tanh(), 2, 1);
        x = Layer(fc1, fc1.weight!, fc1.bias, x.flatten(1), null).tanh();
        return Layer(fc2, fc2.weight!, fc2.bias, x, null);
    }
}
