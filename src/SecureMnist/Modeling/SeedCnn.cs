using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// The seeds' CNN (1,199,882 parameters). Field names match PyTorch's MNIST example
/// (conv1, conv2, fc1, fc2), so weight names line up with PyTorch state_dicts.
/// </summary>
public sealed class SeedCnn : Module<Tensor, Tensor>, IFeatureExtractor
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly SeededDropout dropout1;
    private readonly Linear fc1;
    private readonly SeededDropout dropout2;
    private readonly Linear fc2;

    public SeedCnn() : base(nameof(SeedCnn))
    {
        conv1 = Conv2d(1, 32, 3);
        conv2 = Conv2d(32, 64, 3);
        dropout1 = new SeededDropout(0.25);
        fc1 = Linear(9216, 128);
        dropout2 = new SeededDropout(0.5);
        fc2 = Linear(128, 10);
        RegisterComponents();
    }

    /// <summary>The 128 activations after fc1 and its ReLU (before the last dropout).</summary>
    public Tensor Features(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(conv1.call((input - InputNormalization.Mean) / InputNormalization.StandardDeviation));
        // channels-last lets oneDNN's conv and the pooling kernel vectorise over channels (~25% faster).
        x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        // max-pool before ReLU equals ReLU before max-pool (ReLU is monotone) on a quarter of the values.
        x = functional.relu(functional.max_pool2d(conv2.call(x), 2));
        x = dropout1.call(x.flatten(1));
        return functional.relu(fc1.call(x)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc2.call(dropout2.call(Features(input))).MoveToOuterDisposeScope();
    }
}
