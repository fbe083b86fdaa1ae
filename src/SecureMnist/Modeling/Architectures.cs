using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>The networks this tool builds, by the name recorded in model packages.</summary>
public static class Architectures
{
    public const string SeedCnn = "seed-cnn";
    public const string WideCnn = "wide-cnn";
    public const string SmallCnn = "small-cnn";
    public const string LinearSoftmax = "linear";
    public const string DpCnn = "dp-cnn";
    public const string ScatterLinear = "scatter-linear";
    public const string Default = SeedCnn;

    /// <summary>A network given as a layer list (<see cref="ArchitectureSpec"/>), recorded in the package's manifest.</summary>
    public const string Custom = "custom";

    /// <summary>An ONNX model run by ONNX Runtime (<c>import --from-onnx</c>): scores without gradients, for evaluation and black-box attacks.</summary>
    public const string Onnx = "onnx";

    public static IReadOnlyDictionary<string, string> Descriptions { get; } = new Dictionary<string, string>
    {
        [SeedCnn] = "the seeds' CNN: conv 1-32 3x3, conv 32-64 3x3, max-pool, dropout .25, fc 9216-128, dropout .5, fc 128-10",
        [WideCnn] = "Madry et al.'s MNIST CNN: conv 32 5x5, pool, conv 64 5x5, pool, fc 3136-1024, fc 1024-10",
        [SmallCnn] = "the TRADES reference's MNIST CNN: conv 32, 32, pool, conv 64, 64, pool (3x3), fc 1024-200, dropout .5, fc 200-200, fc 200-10",
        [DpCnn] = "a small tanh CNN for DP-SGD (Papernot et al.): conv 16 8x8/2, pool, conv 32 4x4/2, pool, fc 512-32, fc 32-10; 26,010 parameters",
        [ScatterLinear] = "ScatterNet + linear for DP-SGD (Tramèr and Boneh): a fixed scattering transform (J 2, L 8: 81 channels at 7x7), group norm (27 groups, no parameters), fc 3969-10; 39,700 parameters",
        [LinearSoftmax] = "a linear softmax classifier on raw pixels (784-10), for tests and closed-form checks",
    };

    public static IEnumerable<string> Names => Descriptions.Keys;

    /// <summary>The architectures DP-SGD can train: their forward pass records the taps per-example gradients need.</summary>
    public static IReadOnlyList<string> PrivateTrainable { get; } = [DpCnn, ScatterLinear];

    public static Module<Tensor, Tensor> Create(string name) => name switch
    {
        SeedCnn => new SeedCnn(),
        WideCnn => new WideCnn(),
        SmallCnn => new SmallCnn(),
        LinearSoftmax => new LinearSoftmax(),
        DpCnn => new DpCnn(),
        ScatterLinear => new ScatterLinear(),
        _ => throw new ArgumentException($"unknown architecture '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>The network a package names: one of ours, or <see cref="Custom"/> built from the spec its manifest records.</summary>
    public static Module<Tensor, Tensor> Create(string name, ArchitectureSpec? spec)
    {
        if (name == Custom) return new SpecNetwork(spec ?? throw new ArgumentException($"architecture '{Custom}' needs its layer list (spec), and there is none"));
        if (spec is not null) throw new ArgumentException($"a layer list (spec) belongs with architecture '{Custom}', not '{name}'");
        return Create(name);
    }

    public static long ParameterCount(Module<Tensor, Tensor> model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.parameters().Sum(p => p.numel());
    }
}
