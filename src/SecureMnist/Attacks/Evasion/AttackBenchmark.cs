using System.Diagnostics;
using SecureMnist.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Wall time of one attack over a whole set, and the examples it made (to compare code paths).</summary>
public sealed record AttackTiming(double Seconds, int Images, float[] Adversarial);

public static class AttackBenchmark
{
    /// <summary>Runs the attack over all images in batches and times it; nothing else is inside the timed region.</summary>
    public static AttackTiming Measure(IClassifier model, LabeledImages data, IEvasionAttack attack, int batchSize = 500, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(attack);
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        var adversarial = new float[data.Count * data.PixelsPerImage];
        var stopwatch = Stopwatch.StartNew();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var length = Math.Min(batchSize, data.Count - start);
            var generated = attack.Generate(model, images.narrow(0, start, length), labels.narrow(0, start, length));
            generated.contiguous().data<float>().ToArray().CopyTo(adversarial, start * data.PixelsPerImage);
        }
        return new AttackTiming(stopwatch.Elapsed.TotalSeconds, data.Count, adversarial);
    }
}
