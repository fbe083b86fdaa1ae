using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// The wider network of Madry et al.'s MNIST challenge (conv32 5x5, pool, conv64 5x5, pool, fc1024):
/// more capacity, which adversarial training needs. 3,274,634 parameters.
/// </summary>
public sealed class WideCnn : Module<Tensor, Tensor>, IFeatureExtractor
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public WideCnn() : base(nameof(WideCnn))
    {
        conv1 = Conv2d(1, 32, 5, padding: 2);
        conv2 = Conv2d(32, 64, 5, padding: 2);
        fc1 = Linear(7 * 7 * 64, 1024);
        fc2 = Linear(1024, 10);
        RegisterComponents();
    }

    public Tensor Features(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = (input - InputNormalization.Mean) / InputNormalization.StandardDeviation;
        x = functional.max_pool2d(functional.relu(conv1.call(x)), 2);
        x = functional.max_pool2d(functional.relu(conv2.call(x)), 2);
        return functional.relu(fc1.call(x.flatten(1))).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc2.call(Features(input)).MoveToOuterDisposeScope();
    }
}
