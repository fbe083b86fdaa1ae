using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureMnist.Privacy;

/// <summary>Where a convolution's window goes: square kernel, stride and zero padding.</summary>
public sealed record ConvolutionGeometry(long Kernel, long Stride, long Padding);

/// <summary>
/// One trainable layer's part of a recorded forward pass: its parameters, its input, and its output, whose gradient
/// (retained by <see cref="Record"/>) is the per-example backprop once the summed loss has been backpropagated.
/// <paramref name="Convolution"/> is null for a linear layer.
/// </summary>
public sealed record LayerTap(Parameter Weight, Parameter? Bias, Tensor Input, Tensor Output, ConvolutionGeometry? Convolution)
{
    /// <summary>Keeps what per-example gradients need: the input's values and the output's gradient.</summary>
    public static LayerTap Record(Parameter weight, Parameter? bias, Tensor input, Tensor output, ConvolutionGeometry? convolution = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.retain_grad();
        return new LayerTap(weight, bias, input.detach(), output, convolution);
    }
}

/// <summary>A network that can record its trainable layers during a forward pass, so DP-SGD can take per-example gradients.</summary>
public interface IRecordingNetwork
{
    /// <summary>The logits, with every trainable layer recorded: the taps must cover all of the network's parameters.</summary>
    (Tensor Logits, IReadOnlyList<LayerTap> Taps) ForwardRecorded(Tensor input);
}

/// <summary>
/// A recording network whose first stage is a fixed map without parameters (a scattering transform): its output for an image never
/// changes during training, so DP-SGD computes it once for the training set (see <see cref="FixedFeatures"/>) and steps on the features.
/// </summary>
public interface IFixedFeatureNetwork : IRecordingNetwork
{
    /// <summary>The fixed first stage on a batch of images.</summary>
    Tensor FixedFeatures(Tensor images);

    /// <summary>The logits from fixed features, with every trainable layer recorded.</summary>
    (Tensor Logits, IReadOnlyList<LayerTap> Taps) ForwardRecordedFromFeatures(Tensor features);

    /// <summary>The logits from fixed features.</summary>
    Tensor ForwardFromFeatures(Tensor features);
}

/// <summary>Computes a network's fixed features for a whole image set, chunk by chunk.</summary>
public static class FixedFeatures
{
    public static Tensor Of(IFixedFeatureNetwork network, Tensor images, int chunk = 1024, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            parts.Add(network.FixedFeatures(images.narrow(0, start, Math.Min(chunk, images.shape[0] - start))));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Per-example gradients in one backward pass over the batch, as Opacus' grad samplers compute them: for a linear layer the
/// outer product of each example's backprop and activation; for a convolution the backprop times the unfolded input
/// (im2col). The loss must be the sum of the examples' losses, so each example's backprop is its own.
/// </summary>
public static class PerSampleGradients
{
    /// <summary>Each tapped parameter with its per-example gradients, shaped [batch, ..parameter shape].</summary>
    public static IReadOnlyList<(Parameter Parameter, Tensor Gradients)> Of(IReadOnlyList<LayerTap> taps)
    {
        ArgumentNullException.ThrowIfNull(taps);
        var result = new List<(Parameter, Tensor)>();
        using var noGrad = no_grad();
        foreach (var tap in taps)
        {
            var backprop = tap.Output.grad ?? throw new InvalidOperationException("no gradient on a tapped layer's output: backpropagate the summed loss first");
            var n = backprop.shape[0];
            if (tap.Convolution is { } geometry)
            {
                var unfolded = nn.functional.unfold(tap.Input, geometry.Kernel, padding: geometry.Padding, stride: geometry.Stride); // [n, c k k, L]
                var b = backprop.reshape(n, backprop.shape[1], -1);                                                                   // [n, o, L]
                result.Add((tap.Weight, bmm(b, unfolded.transpose(1, 2)).reshape([n, .. tap.Weight.shape])));
                if (tap.Bias is { } bias) result.Add((bias, b.sum(2)));
            }
            else
            {
                result.Add((tap.Weight, bmm(backprop.unsqueeze(2), tap.Input.unsqueeze(1))));                                        // [n, out, in]
                if (tap.Bias is { } bias) result.Add((bias, backprop.clone()));
            }
        }
        return result;
    }

    /// <summary>Each example's gradient norm over all the parameters together.</summary>
    public static Tensor Norms(IReadOnlyList<(Parameter Parameter, Tensor Gradients)> gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count == 0) throw new ArgumentException("no gradients", nameof(gradients));
        using var scope = NewDisposeScope();
        var squared = gradients.Select(g => g.Gradients.flatten(1).square().sum(1)).Aggregate((a, b) => a + b);
        return squared.sqrt().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scales each example's gradient to an L2 norm of at most <paramref name="maxNorm"/> (factor min(1, C / (norm + 1e-6)), as
    /// Opacus clips) and sums over the batch: the per-parameter sums DP-SGD adds its noise to.
    /// </summary>
    public static IReadOnlyList<(Parameter Parameter, Tensor Sum)> ClipAndSum(IReadOnlyList<(Parameter Parameter, Tensor Gradients)> gradients, double maxNorm)
    {
        if (!(maxNorm > 0) || double.IsInfinity(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "the clipping norm must be above 0");
        using var scope = NewDisposeScope();
        var factors = (maxNorm / (Norms(gradients) + 1e-6)).clamp_max(1.0);
        var sums = gradients.Select(g => (g.Parameter, einsum("n,n...->...", factors, g.Gradients).MoveToOuterDisposeScope())).ToList();
        return sums;
    }
}
