using System.Diagnostics;
using SecureMnist.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Progress of a robustness run: which attack, and how many of its inputs are done.</summary>
public sealed record AttackProgress(string Attack, int AttackIndex, int Attacks, int Done, int Total);

/// <summary>
/// Runs attacks in order, each on the inputs that are still robust, and keeps for every input the
/// example that broke it. Checks every produced example against its attack's threat model, and
/// recomputes the reported predictions on the kept examples.
/// </summary>
public static class AttackEvaluator
{
    /// <summary>Slack for float rounding when checking that a perturbation stays within eps.</summary>
    public const double NormTolerance = 1e-5;

    public static RobustnessRun Run(IClassifier model, LabeledImages data, IReadOnlyList<IEvasionAttack> attacks, int batchSize = 500,
        IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(attacks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        AttackCatalog.RequireOneThreatModel(attacks);
        var stopwatch = Stopwatch.StartNew();
        var count = data.Count;
        var pixels = data.PixelsPerImage;
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        var clean = images.data<float>().ToArray();
        var adversarial = (float[])clean.Clone();
        var cleanPredictions = model.Predict(images, batchSize);
        var robust = Enumerable.Range(0, count).Select(i => cleanPredictions[i] == data.Labels[i]).ToArray();
        var cleanCorrect = robust.Count(r => r);
        var brokenBy = new string?[count];
        var stages = new List<AttackStage>();

        for (var a = 0; a < attacks.Count; a++)
        {
            var attack = attacks[a];
            if (attack.Targeted) throw new ArgumentException($"{attack.Name} is targeted; robustness runs use untargeted attacks");
            var attackWatch = Stopwatch.StartNew();
            var counted = new CountingClassifier(model);
            var pending = Enumerable.Range(0, count).Where(i => robust[i]).ToArray();
            var broken = 0;
            progress?.Report(new AttackProgress(attack.Name, a + 1, attacks.Count, 0, pending.Length));
            for (var start = 0; start < pending.Length; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var batch = pending[start..Math.Min(start + batchSize, pending.Length)];
                var index = tensor(batch.Select(i => (long)i).ToArray());
                var x = images.index_select(0, index);
                var y = labels.index_select(0, index);
                var generated = attack.Generate(counted, x, y).detach();
                CheckThreatModel(attack, x, generated);
                int[] predictions;
                using (no_grad()) predictions = RefusedAnswers.Predictions(model, model.Logits(generated), y).to(ScalarType.Int32).data<int>().ToArray();
                var values = generated.contiguous().data<float>().ToArray();
                for (var j = 0; j < batch.Length; j++)
                {
                    if (predictions[j] == data.Labels[batch[j]]) continue;
                    robust[batch[j]] = false;
                    brokenBy[batch[j]] = attack.Name;
                    Array.Copy(values, j * pixels, adversarial, batch[j] * pixels, pixels);
                    broken++;
                }
                progress?.Report(new AttackProgress(attack.Name, a + 1, attacks.Count, Math.Min(start + batchSize, pending.Length), pending.Length));
            }
            var seconds = attackWatch.Elapsed.TotalSeconds;
            stages.Add(new AttackStage(attack.Name, pending.Length, broken, (double)robust.Count(r => r) / count, seconds, seconds > 0 ? pending.Length / seconds : 0,
                counted.Images, seconds > 0 ? counted.Images / seconds : 0));
        }

        // The reported predictions are recomputed on the kept examples, not carried over from the attack loop.
        using var kept = tensor(adversarial, [count, 1, data.Rows, data.Columns]);
        // A refused answer counts as the attack not getting past, as in the loop (a remote service may refuse more as it sees more).
        var adversarialPredictions = new int[count];
        using (no_grad())
        {
            for (var start = 0; start < count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, count - start);
                var logits = model.Logits(kept.narrow(0, start, length));
                RefusedAnswers.Predictions(model, logits, labels.narrow(0, start, length)).to(ScalarType.Int32).data<int>().CopyTo(adversarialPredictions.AsSpan(start, length));
            }
        }
        var robustCount = Enumerable.Range(0, count).Count(i => cleanPredictions[i] == data.Labels[i] && adversarialPredictions[i] == data.Labels[i]);
        if (robustCount != robust.Count(r => r))
            throw new AttackInvariantException($"recomputed predictions on the kept examples disagree with the attack loop ({robustCount} vs {robust.Count(r => r)} robust)");

        var elapsed = stopwatch.Elapsed.TotalSeconds;
        var report = new RobustnessReport(
            count,
            (double)cleanCorrect / count,
            (double)robustCount / count,
            cleanCorrect == 0 ? 0 : (double)(cleanCorrect - robustCount) / cleanCorrect,
            Perturbations(clean, adversarial, Enumerable.Range(0, count).Where(i => brokenBy[i] is not null).ToArray(), pixels),
            stages,
            PerClass(data.Labels, cleanPredictions, adversarialPredictions),
            elapsed,
            elapsed > 0 ? count / elapsed : 0);
        return new RobustnessRun(report, adversarial, data.Labels, cleanPredictions, adversarialPredictions, brokenBy);
    }

    /// <summary>Values in [0, 1], and the perturbation within eps in the attack's norm (when it has an eps).</summary>
    public static void CheckThreatModel(IEvasionAttack attack, Tensor original, Tensor adversarial)
    {
        ArgumentNullException.ThrowIfNull(attack);
        using var scope = NewDisposeScope();
        if (!adversarial.shape.SequenceEqual(original.shape))
            throw new AttackInvariantException($"{attack.Name} changed the shape from [{string.Join(",", original.shape)}] to [{string.Join(",", adversarial.shape)}]");
        if (adversarial.isnan().any().item<bool>()) throw new AttackInvariantException($"{attack.Name} produced NaN values");
        var low = adversarial.min().item<float>();
        var high = adversarial.max().item<float>();
        if (low < 0 || high > 1) throw new AttackInvariantException($"{attack.Name} produced values outside [0, 1] (min {low}, max {high})");
        if (double.IsPositiveInfinity(attack.Epsilon)) return;
        var delta = (adversarial - original).flatten(1);
        var largest = attack.Norm == PerturbationNorm.LInf
            ? delta.abs().amax(1).max().item<float>()
            : delta.norm(1, p: 2).max().item<float>();
        if (largest > attack.Epsilon + NormTolerance)
            throw new AttackInvariantException($"{attack.Name} exceeded its budget: {attack.Norm} perturbation {largest} > eps {attack.Epsilon}");
    }

    private static PerturbationStats Perturbations(float[] clean, float[] adversarial, int[] indices, int pixels)
    {
        if (indices.Length == 0) return new PerturbationStats(0, 0, 0, 0, 0);
        var linf = new double[indices.Length];
        var l2 = new double[indices.Length];
        for (var k = 0; k < indices.Length; k++)
        {
            double max = 0, sum = 0;
            for (var p = indices[k] * pixels; p < (indices[k] + 1) * pixels; p++)
            {
                var d = Math.Abs((double)adversarial[p] - clean[p]);
                max = Math.Max(max, d);
                sum += d * d;
            }
            linf[k] = max;
            l2[k] = Math.Sqrt(sum);
        }
        return new PerturbationStats(indices.Length, linf.Average(), Median(linf), l2.Average(), Median(l2));
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static List<ClassRobustness> PerClass(byte[] labels, int[] clean, int[] adversarial, int classCount = 10)
    {
        var result = new List<ClassRobustness>();
        for (var c = 0; c < classCount; c++)
        {
            var members = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();
            var support = members.Length;
            result.Add(new ClassRobustness(c, support,
                support == 0 ? 0 : (double)members.Count(i => clean[i] == c) / support,
                support == 0 ? 0 : (double)members.Count(i => clean[i] == c && adversarial[i] == c) / support));
        }
        return result;
    }
}
