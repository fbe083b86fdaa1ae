using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// Robust whitening in the manner of SPECTRE (Hayase et al. 2021): the class's activations are whitened with a covariance re-estimated
/// a few times without the <see cref="PoisonDetectionOptions.Trim"/> share of members farthest from the rest (Mahalanobis distance), so a
/// small, shifted poison population stands out instead of inflating the estimate; each member is scored by its robust z-score along the
/// top direction of the whitened activations, and 2-means on that score decides.
/// </summary>
internal sealed class SpectreDetector(PoisonDetectionOptions options) : IClassPoisonDetector
{
    public ClassDetection Analyse(ClassActivations activations)
    {
        var members = activations.Members;
        var scores = Scores(activations, options.Trim);
        var assignment = KMeans.TwoMeans(scores.Select(z => (float)z).ToArray(), members.Length, 1, options.Seed);
        var sizes = new int[2];
        foreach (var a in assignment) sizes[a]++;
        var small = sizes[0] <= sizes[1] ? 0 : 1;
        var fraction = (double)sizes[small] / members.Length;
        var separation = Separation(scores, assignment, small);
        var suspicious = sizes[small] > 0 && fraction <= options.MaxClusterFraction && separation >= options.MinSeparation;
        FlaggedSample[] flagged = suspicious
            ? [.. Enumerable.Range(0, members.Length).Where(k => assignment[k] == small).Select(k => new FlaggedSample(members[k], activations.Label, Math.Abs(scores[k])))]
            : [];
        return new(new ClassAnalysis(activations.Label, members.Length, flagged.Length, fraction, separation, suspicious), flagged, [.. scores.Select(Math.Abs)]);
    }

    /// <summary>Distance between the two clusters' centres over the sum of their standard deviations (0 when one is empty).</summary>
    private static double Separation(double[] scores, int[] assignment, int small)
    {
        var inSmall = scores.Where((_, k) => assignment[k] == small).ToArray();
        var inLarge = scores.Where((_, k) => assignment[k] != small).ToArray();
        if (inSmall.Length == 0 || inLarge.Length == 0) return 0;
        static double Deviation(double[] values, double mean) => Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        var (smallMean, largeMean) = (inSmall.Average(), inLarge.Average());
        return Math.Abs(smallMean - largeMean) / Math.Max(Deviation(inSmall, smallMean) + Deviation(inLarge, largeMean), 1e-12);
    }

    /// <summary>Robust z-scores of the members along the top principal direction of their robustly whitened activations.</summary>
    private static double[] Scores(ClassActivations activations, double trim)
    {
        using var scope = NewDisposeScope();
        var count = activations.Members.Length;
        var dimensions = activations.Dimensions;
        var x = activations.Matrix();
        var kept = ones(count, dtype: ScalarType.Bool);
        Tensor mean = x.mean([0]), whitening = eye(dimensions, dtype: ScalarType.Float64);
        for (var iteration = 0; iteration < 4; iteration++)
        {
            var inliers = x[kept];
            mean = inliers.mean([0]);
            var centred = inliers - mean;
            var covariance = centred.t().matmul(centred) / Math.Max(1, inliers.shape[0] - 1);
            var (eigenvalues, eigenvectors) = linalg.eigh(covariance);
            // Dead ReLU units give zero variance: floor the spectrum so whitening does not divide by zero.
            var floor = Math.Max(eigenvalues.max().item<double>() * 1e-3, 1e-12);
            whitening = eigenvectors.matmul(diag(eigenvalues.clamp_min(floor).rsqrt())).matmul(eigenvectors.t());
            var distances = (x - mean).matmul(whitening).pow(2).sum(1);
            var cut = distances.sort().Values[(long)Math.Min(count - 1, Math.Floor(count * (1 - trim)))];
            kept = distances <= cut;
        }
        var whitened = (x - mean).matmul(whitening);
        var (_, _, vh) = linalg.svd(whitened, fullMatrices: false);
        var projection = whitened.matmul(vh[0]).data<double>().ToArray();
        var median = PoisonDetector.Median(projection);
        var spread = 1.4826 * PoisonDetector.Median([.. projection.Select(p => Math.Abs(p - median))]);
        return [.. projection.Select(p => (p - median) / Math.Max(spread, 1e-12))];
    }
}
