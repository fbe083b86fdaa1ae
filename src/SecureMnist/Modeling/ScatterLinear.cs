using SecureMnist.Privacy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// Tramèr and Boneh's (2021) "ScatterNet + linear" for DP-SGD: a fixed 2D scattering transform (<see cref="Scattering2D"/>, J = 2, L = 8:
/// 81 channels at 7x7), group normalization over 27 groups of 3 channels without learned parameters (so each example is normalized by
/// its own statistics alone and the normalization costs no privacy), and one linear layer 3,969-10 (39,700 parameters). Handcrafted
/// features let a linear model reach accuracy that end-to-end CNNs reach only with far more data under DP's noise.
/// </summary>
public sealed class ScatterLinear : Module<Tensor, Tensor>, IFixedFeatureNetwork
{
    /// <summary>Channel groups of the group normalization (Tramèr and Boneh's setting for MNIST-sized scattering outputs).</summary>
    public const int Groups = 27;

    private readonly Scattering2D scattering = new();
    private readonly Linear fc;

    public ScatterLinear() : base(nameof(ScatterLinear))
    {
        fc = Linear(scattering.Channels * scattering.OutputHeight * scattering.OutputWidth, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return ForwardFromFeatures(FixedFeatures(input)).MoveToOuterDisposeScope();
    }

    /// <summary>The logits, with the linear layer recorded for <see cref="PerSampleGradients"/>.</summary>
    public (Tensor Logits, IReadOnlyList<LayerTap> Taps) ForwardRecorded(Tensor input) => ForwardRecordedFromFeatures(FixedFeatures(input));

    /// <summary>
    /// The scattering coefficients, each example normalized over 27 groups of 3 channels by its own statistics, flattened: [N, 3,969].
    /// Differentiable in the images, so white-box attacks see the whole network.
    /// </summary>
    public Tensor FixedFeatures(Tensor images)
    {
        using var scope = NewDisposeScope();
        return functional.group_norm(scattering.Transform(images), Groups).flatten(1).MoveToOuterDisposeScope();
    }

    public (Tensor Logits, IReadOnlyList<LayerTap> Taps) ForwardRecordedFromFeatures(Tensor features)
    {
        var logits = fc.call(features);
        return (logits, [LayerTap.Record(fc.weight!, fc.bias, features, logits)]);
    }

    public Tensor ForwardFromFeatures(Tensor features) => fc.call(features);

    protected override void Dispose(bool disposing)
    {
        if (disposing) scattering.Dispose();
        base.Dispose(disposing);
    }
}
