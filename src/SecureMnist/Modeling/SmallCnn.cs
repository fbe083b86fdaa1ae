using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// The MNIST network of the TRADES reference (Zhang et al., 2019): four 3x3 convolutions (32, 32, 64, 64) with a
/// max-pool after each pair, then fc 1024-200, dropout .5, fc 200-200, fc 200-10. Convolutions start from
/// Kaiming-normal weights and zero biases and the last layer from zeros, as in the reference. 312,202 parameters:
/// a tenth of <see cref="WideCnn"/>, with fewer multiply-adds per image.
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>, IFeatureExtractor
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Conv2d conv3;
    private readonly Conv2d conv4;
    private readonly Linear fc1;
    private readonly SeededDropout dropout;
    private readonly Linear fc2;
    private readonly Linear fc3;

    public SmallCnn() : base(nameof(SmallCnn))
    {
        conv1 = Conv2d(1, 32, 3);
        conv2 = Conv2d(32, 32, 3);
        conv3 = Conv2d(32, 64, 3);
        conv4 = Conv2d(64, 64, 3);
        fc1 = Linear(64 * 4 * 4, 200);
        dropout = new SeededDropout(0.5);
        fc2 = Linear(200, 200);
        fc3 = Linear(200, 10);
        RegisterComponents();
        using (no_grad())
        {
            foreach (var conv in new[] { conv1, conv2, conv3, conv4 })
            {
                init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanIn, nonlinearity: init.NonlinearityType.ReLU);
                init.zeros_(conv.bias);
            }
            init.zeros_(fc3.weight);
            init.zeros_(fc3.bias);
        }
    }

    /// <summary>The 200 activations after fc2 and its ReLU.</summary>
    public Tensor Features(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = (input - InputNormalization.Mean) / InputNormalization.StandardDeviation;
        x = functional.relu(conv2.call(functional.relu(conv1.call(x))));
        x = functional.max_pool2d(x, 2);
        x = functional.relu(conv4.call(functional.relu(conv3.call(x))));
        x = functional.max_pool2d(x, 2);
        x = dropout.call(functional.relu(fc1.call(x.flatten(1))));
        return functional.relu(fc2.call(x)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc3.call(Features(input)).MoveToOuterDisposeScope();
    }
}
