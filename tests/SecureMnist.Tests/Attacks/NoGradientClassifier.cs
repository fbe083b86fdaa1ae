using SecureMnist.Attacks.Evasion;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

/// <summary>A classifier that refuses to be differentiated: any forward pass that could feed a gradient throws (for black-box attacks).</summary>
internal sealed class NoGradientClassifier(IClassifier inner) : IClassifier
{
    public int ClassCount => inner.ClassCount;

    public Tensor Logits(Tensor images)
    {
        if (is_grad_enabled() || images.requires_grad) throw new InvalidOperationException("a gradient was asked of a black box");
        return inner.Logits(images);
    }
}
