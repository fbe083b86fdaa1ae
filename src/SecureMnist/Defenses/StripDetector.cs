using SecureMnist.Attacks.Evasion;
using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>How STRIP superimposes an overlay on an input.</summary>
public enum StripBlend
{
    /// <summary>Add the two images and clip to [0, 1], as Gao et al. describe it. A saturated (white) trigger patch survives this untouched.</summary>
    Add,
    /// <summary>The weighted average (1 - alpha) x + alpha overlay, which dims every trigger, patch or not.</summary>
    Alpha,
}

/// <summary>STRIP settings: how many clean overlays each input is superimposed with, how, and the false-positive rate to calibrate for.</summary>
/// <remarks>
/// <see cref="Confidence"/> is the probability that the calibrated threshold's true false-positive rate stays at or
/// below <see cref="FalsePositiveRate"/>; a plain quantile of the calibration entropies only meets the target half the time.
/// </remarks>
public sealed record StripOptions(int Overlays = 32, double FalsePositiveRate = 0.05, int Seed = 1, double Confidence = 0.95,
    StripBlend Blend = StripBlend.Add, double BlendAlpha = 0.5)
{
    public void Validate()
    {
        if (BlendAlpha is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(BlendAlpha), BlendAlpha, "the overlay's weight in an alpha blend must be in (0, 1)");
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
            var input = inputs.narrow(0, start, length).unsqueeze(1);
            // Add and clip (the paper), or the weighted average.
            var blended = options.Blend == StripBlend.Add ? (input + chosen).clamp_(0, 1) : input * (1 - options.BlendAlpha) + chosen * options.BlendAlpha;
            var blends = blended.reshape(-1, 1, pool.shape[2], pool.shape[3]);
            var p = model.Probabilities(blends, 4096);
            var entropy = -(p * p.clamp_min(1e-12).log()).sum(1).reshape(length, options.Overlays).mean([1]).to(ScalarType.Float64);
            entropy.data<double>().ToArray().CopyTo(result, start);
        }
        return result;
    }

    public void Dispose() => overlays.Dispose();
}
