using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Shared pieces of the gradient attacks: losses, gradients, projections.</summary>
internal static class AttackMath
{
    /// <summary>Gradient of the summed per-example loss w.r.t. the images, and the per-example loss.</summary>
    public static (Tensor Gradient, Tensor Loss) Gradient(IClassifier model, Tensor images, Func<Tensor, Tensor> perExampleLoss)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var x = images.detach().requires_grad_(true);
        var loss = perExampleLoss(model.Logits(x));
        var gradient = autograd.grad([loss.sum()], [x])[0];
        return (gradient.detach().MoveToOuterDisposeScope(), loss.detach().MoveToOuterDisposeScope());
    }

    /// <summary>Cross-entropy per example; targeted attacks descend it, untargeted ones ascend it.</summary>
    public static Func<Tensor, Tensor> CrossEntropy(Tensor labels) =>
        logits => functional.cross_entropy(logits, labels, reduction: Reduction.None);

    /// <summary>Per-example L2 norm over all but the first dimension, shaped [N, 1, 1, 1] for broadcasting.</summary>
    public static Tensor L2Norm(Tensor batch) =>
        batch.flatten(1).norm(1, keepdim: true, p: 2).view(-1, 1, 1, 1);

    /// <summary>Projects x onto the eps-ball around the original images (in the norm), then onto [0, 1].</summary>
    public static Tensor Project(Tensor adversarial, Tensor original, double epsilon, PerturbationNorm norm)
    {
        using var scope = NewDisposeScope();
        var delta = adversarial - original;
        delta = norm switch
        {
            PerturbationNorm.LInf => delta.clamp(-epsilon, epsilon),
            _ => delta * (epsilon / L2Norm(delta).clamp_min(1e-12)).clamp_max(1.0),
        };
        return (original + delta).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>True where the prediction is the attack's goal: wrong (untargeted) or the target (targeted).</summary>
    public static Tensor Succeeded(Tensor logits, Tensor labels, bool targeted)
    {
        using var predictions = logits.argmax(1);
        return targeted ? predictions.eq(labels) : predictions.ne(labels);
    }

    public static void Validate(double epsilon, string name)
    {
        if (!(epsilon >= 0) || double.IsInfinity(epsilon)) throw new ArgumentOutOfRangeException(name, epsilon, "eps must be a finite number >= 0");
    }
}
