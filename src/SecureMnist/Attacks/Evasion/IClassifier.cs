using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>What an evasion attack needs from a model: logits for images in [0, 1], differentiable w.r.t. the images.</summary>
public interface IClassifier
{
    int ClassCount { get; }

    /// <summary>Logits [N, classes] for images [N, 1, 28, 28] with values in [0, 1].</summary>
    Tensor Logits(Tensor images);
}

/// <summary>
/// A TorchSharp network as an attack target, in evaluation mode. Its parameters are frozen while it is
/// wrapped, so backward passes compute only the input gradient that attacks need.
/// </summary>
public sealed class NetworkClassifier : IClassifier, IDisposable
{
    private readonly Module<Tensor, Tensor> network;
    private readonly bool wasTraining;
    private readonly List<(TorchSharp.Modules.Parameter Parameter, bool RequiredGrad)> frozen = [];

    public NetworkClassifier(Module<Tensor, Tensor> network, int classCount = 10, bool freezeParameters = true)
    {
        ArgumentNullException.ThrowIfNull(network);
        this.network = network;
        ClassCount = classCount;
        wasTraining = network.training;
        network.eval();
        if (freezeParameters)
        {
            foreach (var parameter in network.parameters())
            {
                frozen.Add((parameter, parameter.requires_grad));
                parameter.requires_grad = false;
            }
        }
    }

    public int ClassCount { get; }

    public Tensor Logits(Tensor images) => network.call(images);

    /// <summary>Restores the network's train/eval mode and its parameters' gradient flags.</summary>
    public void Dispose()
    {
        foreach (var (parameter, requiredGrad) in frozen) parameter.requires_grad = requiredGrad;
        network.train(wasTraining);
    }
}
