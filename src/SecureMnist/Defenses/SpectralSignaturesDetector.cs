using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// Spectral signatures (Tran, Li and Madry 2018): the class's activations are centred, each member is scored by the square of its
/// projection on the top right singular vector, and the 1.5 x <see cref="PoisonDetectionOptions.ExpectedFraction"/> x n highest scores
/// (rounded up) are removed from every class, whatever the class looks like: the paper's rule assumes a bound on the poison share.
/// </summary>
internal sealed class SpectralSignaturesDetector(PoisonDetectionOptions options) : IClassPoisonDetector
{
    public ClassDetection Analyse(ClassActivations activations)
    {
        var members = activations.Members;
        var scores = Scores(activations);
        var budget = RemovalCount(members.Length, options.ExpectedFraction);
        FlaggedSample[] flagged = [.. Enumerable.Range(0, members.Length)
            .Select(k => new FlaggedSample(members[k], activations.Label, scores[k]))
            .OrderByDescending(f => f.Score).Take(budget)];
        return new(new ClassAnalysis(activations.Label, members.Length, flagged.Length, members.Length == 0 ? 0 : (double)budget / members.Length, 0, budget > 0), flagged, scores);
    }

    /// <summary>How many of a class of <paramref name="members"/> the rule removes: 1.5 x the expected poison count, rounded up.</summary>
    public static int RemovalCount(int members, double expectedFraction) => (int)Math.Min(members, Math.Ceiling(1.5 * expectedFraction * members - 1e-9));

    private static double[] Scores(ClassActivations activations)
    {
        using var scope = NewDisposeScope();
        var x = activations.Matrix();
        var centred = x - x.mean([0]);
        var (_, _, vh) = linalg.svd(centred, fullMatrices: false);
        return [.. centred.matmul(vh[0]).pow(2).data<double>().ToArray()];
    }
}
