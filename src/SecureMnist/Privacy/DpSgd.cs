using System.Security.Cryptography;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureMnist.Privacy;

/// <summary>
/// DP-SGD's settings: the noise multiplier sigma, the clipping norm C, and the Poisson sampling rate q (each example joins
/// each step's batch independently with probability q, which is what the sampled Gaussian mechanism's accounting assumes).
/// </summary>
public sealed record DpSgdOptions(double NoiseMultiplier, double MaxGradientNorm, double SampleRate)
{
    public void Validate()
    {
        if (!(NoiseMultiplier > 0) || double.IsInfinity(NoiseMultiplier)) throw new ArgumentOutOfRangeException(nameof(NoiseMultiplier), NoiseMultiplier, "the noise multiplier must be above 0");
        if (!(MaxGradientNorm > 0) || double.IsInfinity(MaxGradientNorm)) throw new ArgumentOutOfRangeException(nameof(MaxGradientNorm), MaxGradientNorm, "the clipping norm must be above 0");
        if (!(SampleRate is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(SampleRate), SampleRate, "the sampling rate must be in (0, 1)");
    }
}

/// <summary>
/// The private part of a DP-SGD step: the gradient each parameter gets is the sum of the batch's clipped per-example gradients
/// plus N(0, (sigma C)^2) noise, divided by the expected batch size q N (not the drawn one, which would itself leak); every
/// step is entered in the <see cref="RdpAccountant"/>.
/// </summary>
/// <remarks>
/// With <c>secureNoise</c> the noise generator is reseeded from the operating system's CSPRNG before every step, so neither the
/// noise nor (through <see cref="NewSampler"/>) the batches can be replayed from a known seed, and each noise value is the sum of four
/// standard normals scaled by sigma C / 2, as Opacus' secure mode draws it against floating-point attacks on a single Gaussian sample
/// (Mironov 2012; Holohan and Braghin 2021). The price is that the run cannot be repeated.
/// </remarks>
public sealed class DpSgd
{
    private readonly Generator noise;

    public DpSgd(DpSgdOptions options, long datasetSize, Generator noise, bool secureNoise = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(datasetSize, 1);
        Options = options;
        ExpectedBatchSize = options.SampleRate * datasetSize;
        this.noise = noise ?? throw new ArgumentNullException(nameof(noise));
        SecureNoise = secureNoise;
    }

    public DpSgdOptions Options { get; }

    /// <summary>Whether noise and samples come from the OS CSPRNG rather than from the run's seed.</summary>
    public bool SecureNoise { get; }

    /// <summary>Restarts the noise stream at <paramref name="seed"/> (e.g. per epoch, so a resumed run draws what an uninterrupted one would); secure mode reseeds from the CSPRNG every step regardless.</summary>
    public void SeedNoise(long seed) => noise.manual_seed(seed);

    /// <summary>The random source for <see cref="Sample"/>: seeded from <paramref name="seed"/>, or from the OS CSPRNG in secure mode.</summary>
    public SeededRandom NewSampler(int seed) => new(SecureNoise ? RandomNumberGenerator.GetInt32(int.MaxValue) : seed);

    public double ExpectedBatchSize { get; }

    public RdpAccountant Accountant { get; } = new();

    /// <summary>
    /// A Poisson sample of the indices 0..n-1: each independently with probability q. It may be empty. The draw is seeded, so a run
    /// can be repeated; like the seeded noise, that is reproducibility, not secrecy of the sample.
    /// </summary>
    public long[] Sample(int n, SeededRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var picked = new List<long>((int)Math.Ceiling(ExpectedBatchSize * 1.2) + 8);
        for (var i = 0; i < n; i++)
            if (random.NextDouble() < Options.SampleRate) picked.Add(i);
        return [.. picked];
    }

    /// <summary>
    /// Sets each parameter's gradient to the noised, clipped mean and accounts for the step. <paramref name="perExample"/> is
    /// null for a step whose Poisson sample was empty: the parameters then get the noise alone, as the mechanism requires.
    /// </summary>
    public void PrivatizeGradients(IReadOnlyList<Parameter> parameters, IReadOnlyList<(Parameter Parameter, Tensor Gradients)>? perExample)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sums = perExample is null ? [] : PerSampleGradients.ClipAndSum(perExample, Options.MaxGradientNorm).ToDictionary(s => s.Parameter, s => s.Sum);
        if (perExample is not null && parameters.FirstOrDefault(p => !sums.ContainsKey(p)) is { } missing)
            throw new ArgumentException($"per-example gradients cover {sums.Count} tensors but not every trained parameter (one of shape [{string.Join(", ", missing.shape)}] has none)", nameof(perExample));
        var standardDeviation = Options.NoiseMultiplier * Options.MaxGradientNorm;
        if (SecureNoise) noise.manual_seed(RandomNumberGenerator.GetInt32(int.MaxValue) * 2_147_483_648L + RandomNumberGenerator.GetInt32(int.MaxValue));
        foreach (var parameter in parameters)
        {
            var sum = sums.TryGetValue(parameter, out var s) ? s : zeros_like(parameter);
            var draw = SecureNoise
                ? (randn(parameter.shape, dtype: parameter.dtype, generator: noise) + randn(parameter.shape, dtype: parameter.dtype, generator: noise)
                   + randn(parameter.shape, dtype: parameter.dtype, generator: noise) + randn(parameter.shape, dtype: parameter.dtype, generator: noise)) / 2
                : randn(parameter.shape, dtype: parameter.dtype, generator: noise);
            var noised = (sum + (draw * standardDeviation)) / ExpectedBatchSize;
            if (parameter.grad is { } grad) grad.copy_(noised);
            else parameter.grad = noised.MoveToOuterDisposeScope();
        }
        Accountant.Step(Options.NoiseMultiplier, Options.SampleRate);
    }
}
