using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Settings of the fast gradient sign method (Goodfellow et al., 2015).</summary>
public sealed record FgsmOptions(double Epsilon, bool Targeted = false)
{
    public void Validate() => AttackMath.Validate(Epsilon, nameof(Epsilon));
}

/// <summary>One step of size eps along the sign of the loss gradient: x' = clip(x ± eps·sign(∇x loss), 0, 1).</summary>
public sealed class Fgsm : IEvasionAttack
{
    private readonly FgsmOptions options;

    public Fgsm(FgsmOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    public string Name => $"fgsm{(Targeted ? "-targeted" : "")}(eps={options.Epsilon})";
    public PerturbationNorm Norm => PerturbationNorm.LInf;
    public double Epsilon => options.Epsilon;
    public bool Targeted => options.Targeted;

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        var (gradient, _) = AttackMath.Gradient(model, images, AttackMath.CrossEntropy(labels));
        var direction = options.Targeted ? -gradient.sign() : gradient.sign();
        return (images + options.Epsilon * direction).clamp(0, 1).detach().MoveToOuterDisposeScope();
    }
}
