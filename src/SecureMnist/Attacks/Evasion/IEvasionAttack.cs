using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>The norm that bounds an attack's perturbation.</summary>
public enum PerturbationNorm
{
    LInf,
    L2,
}

/// <summary>An evasion attack: adversarial examples of the same shape, inside the attack's threat model and [0, 1].</summary>
public interface IEvasionAttack
{
    /// <summary>Short name with its main settings, e.g. "pgd-linf(eps=0.3,alpha=0.01,steps=40,restarts=1)".</summary>
    string Name { get; }

    PerturbationNorm Norm { get; }

    /// <summary>Largest perturbation norm the attack may use; infinity for minimum-norm attacks such as C&amp;W.</summary>
    double Epsilon { get; }

    bool Targeted { get; }

    /// <summary>
    /// Adversarial examples for a batch. <paramref name="labels"/> are true labels for untargeted attacks
    /// and target labels for targeted ones. The result carries no autograd history.
    /// </summary>
    Tensor Generate(IClassifier model, Tensor images, Tensor labels);
}
