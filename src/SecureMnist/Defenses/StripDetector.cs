using SecureMnist.Attacks.Evasion;
using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>STRIP settings: how many clean overlays each input is superimposed with, and the false-positive rate to calibrate for.</summary>
/// <remarks>
/// <see cref="Confidence"/> is the probability that the calibrated threshold's true false-positive rate stays at or
/// below <see cref="FalsePositiveRate"/>; a plain quantile of the calibration entropies only meets the target half the time.
/// </remarks>
public sealed record StripOptions(int Overlays = 32, double FalsePositiveRate = 0.05, int Seed = 1, double Confidence = 0.95)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Overlays);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Overlays, 1024);
        if (FalsePositiveRate is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(FalsePositiveRate), FalsePositiveRate, "the target false-positive rate must be in (0, 1)");
        if (Confidence is < 0.5 or >= 1) throw new ArgumentOutOfRangeException(nameof(Confidence), Confidence, "the confidence must be in [0.5, 1)");
    }
}

/// <summary>
/// STRIP (Gao et al. 2019): a triggered input keeps its (target) prediction when clean digits are superimposed on it,
/// so the entropy of its predictions over the blends is low. Inputs whose mean entropy falls below a threshold,
/// calibrated on clean inputs for the chosen false-positive rate, are flagged as carrying a trigger.
/// </summary>
public sealed class StripDetector : IDisposable
{
    private readonly Tensor overlays;

    private StripDetector(Tensor overlays, StripOptions options, double threshold)
    {
        this.overlays = overlays;
        Options = options;
        Threshold = threshold;
    }

    public StripOptions Options { get; }

    /// <summary>Inputs with mean blend entropy below this (nats) are flagged.</summary>
    public double Threshold { get; }

    /// <summary>Calibrates on clean inputs; <paramref name="overlayPool"/> are clean images to superimpose (kept, not copied per call).</summary>
    public static StripDetector Calibrate(IClassifier model, Tensor overlayPool, Tensor cleanCalibration, StripOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(overlayPool);
        ArgumentNullException.ThrowIfNull(cleanCalibration);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (overlayPool.shape[0] < options.Overlays) throw new ArgumentException($"the overlay pool holds {overlayPool.shape[0]} images; {options.Overlays} overlays are needed");
        var pool = overlayPool.detach().clone();
        var entropies = Entropies(model, pool, cleanCalibration, options);
        return new StripDetector(pool, options, ThresholdCalibration.BelowThreshold(entropies, options.FalsePositiveRate, options.Confidence));
    }

    /// <summary>Mean prediction entropy over the blends of each input (low = suspicious).</summary>
    public double[] Entropies(IClassifier model, Tensor inputs) => Entropies(model, overlays, inputs, Options);

    public bool[] IsTriggered(IClassifier model, Tensor inputs) => Entropies(model, inputs).Select(e => e < Threshold).ToArray();

    private static double[] Entropies(IClassifier model, Tensor pool, Tensor inputs, StripOptions options)
    {
        var count = (int)inputs.shape[0];
        var result = new double[count];
        var random = new SeededRandom(options.Seed);
        var chunk = Math.Max(1, 4096 / options.Overlays);
        for (var start = 0; start < count; start += chunk)
        {
            using var scope = NewDisposeScope();
            var length = Math.Min(chunk, count - start);
            var picks = new long[length * options.Overlays];
            for (var i = 0; i < picks.Length; i++) picks[i] = random.Next((int)pool.shape[0]);
            var chosen = pool.index_select(0, tensor(picks)).reshape(length, options.Overlays, 1, pool.shape[2], pool.shape[3]);
            // Superimposition as in the paper: add the two images and clip to the valid range.
            var blends = (inputs.narrow(0, start, length).unsqueeze(1) + chosen).clamp_(0, 1).reshape(-1, 1, pool.shape[2], pool.shape[3]);
            var p = model.Probabilities(blends, 4096);
            var entropy = -(p * p.clamp_min(1e-12).log()).sum(1).reshape(length, options.Overlays).mean([1]).to(ScalarType.Float64);
            entropy.data<double>().ToArray().CopyTo(result, start);
        }
        return result;
    }

    public void Dispose() => overlays.Dispose();
}
