using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>A multinomial logistic regression on raw pixels: small, and its gradients have a closed form.</summary>
public sealed class LinearSoftmax : Module<Tensor, Tensor>, IFeatureExtractor
{
    private readonly Linear fc;

    public LinearSoftmax() : base(nameof(LinearSoftmax))
    {
        fc = Linear(28 * 28, 10);
        RegisterComponents();
    }

    public Tensor Features(Tensor input) => input.flatten(1);

    public override Tensor forward(Tensor input) => fc.call(input.flatten(1));
}
