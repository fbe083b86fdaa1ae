using SecureMnist.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Training;

/// <summary>
/// An exponential moving average of a network's weights, kept in a second network of the same architecture (the weight averaging
/// that robust training uses to smooth the last epochs' noise, e.g. Gowal et al. 2020). Early updates use the smaller decay
/// (1 + t) / (10 + t), so the average is not dominated by the random initial weights.
/// </summary>
public sealed class WeightAverage : IDisposable
{
    private readonly double decay;

    /// <summary>Starts the average at the current weights of <paramref name="source"/>.</summary>
    public WeightAverage(string architecture, Module<Tensor, Tensor> source, double decay)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!(decay > 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "the decay must be between 0 and 1");
        this.decay = decay;
        Network = Architectures.Create(architecture);
        Network.eval();
        CopyFrom(source);
    }

    /// <summary>The averaged network, in evaluation mode.</summary>
    public Module<Tensor, Tensor> Network { get; }

    /// <summary>The decay used at update <paramref name="step"/> (0-based).</summary>
    public double DecayAt(long step) => Math.Min(decay, (1.0 + step) / (10.0 + step));

    /// <summary>Moves the average toward the current weights of <paramref name="source"/>; <paramref name="step"/> counts optimiser steps from 0.</summary>
    public void Update(Module<Tensor, Tensor> source, long step)
    {
        ArgumentNullException.ThrowIfNull(source);
        var d = DecayAt(step);
        using var _ = no_grad();
        foreach (var (average, current) in Network.parameters().Zip(source.parameters()))
            average.mul_(d).add_(current, alpha: 1 - d);
        foreach (var (average, current) in Network.buffers().Zip(source.buffers()))
            average.copy_(current);
    }

    /// <summary>Sets the average to the current weights of <paramref name="source"/>.</summary>
    public void CopyFrom(Module<Tensor, Tensor> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var _ = no_grad();
        foreach (var (average, current) in Network.parameters().Zip(source.parameters())) average.copy_(current);
        foreach (var (average, current) in Network.buffers().Zip(source.buffers())) average.copy_(current);
    }

    /// <summary>Writes the average into <paramref name="target"/>, a network of the same architecture.</summary>
    public void CopyTo(Module<Tensor, Tensor> target)
    {
        ArgumentNullException.ThrowIfNull(target);
        using var _ = no_grad();
        foreach (var (current, average) in target.parameters().Zip(Network.parameters())) current.copy_(average);
        foreach (var (current, average) in target.buffers().Zip(Network.buffers())) current.copy_(average);
    }

    public void Dispose() => Network.Dispose();
}
