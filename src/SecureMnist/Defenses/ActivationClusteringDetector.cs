using static TorchSharp.torch;

namespace SecureMnist.Defenses;

/// <summary>
/// Activation clustering (Chen et al. 2018) with the settings of ART's ActivationDefence: the class's activations reduced by PCA to
/// <see cref="PoisonDetectionOptions.Dimensions"/> dimensions, 2-means (k-means++, 10 restarts), and a cluster that holds less than
/// <see cref="PoisonDetectionOptions.SizeThreshold"/> of its class (shares rounded to 2 decimals, as ART does) called poison; with
/// <see cref="ClusterAnalysis.Silhouette"/> only when the class's silhouette score also reaches
/// <see cref="PoisonDetectionOptions.SilhouetteThreshold"/>. A flagged sample's score is its distance from the larger cluster's centre.
/// </summary>
internal sealed class ActivationClusteringDetector(PoisonDetectionOptions options) : IClassPoisonDetector
{
    public ClassDetection Analyse(ClassActivations activations)
    {
        var members = activations.Members;
        if (members.Length < 2) return new(new ClassAnalysis(activations.Label, members.Length, 0, 0, 0, false), []);
        var (points, dimensions) = Reduce(activations, options.Dimensions);
        var assignment = KMeans.TwoMeans(points, members.Length, dimensions, options.Seed);
        var sizes = new int[2];
        foreach (var a in assignment) sizes[a]++;
        var small = sizes[0] <= sizes[1] ? 0 : 1;
        var fraction = (double)sizes[small] / members.Length;
        var silhouette = Silhouette(points, dimensions, assignment);
        var suspicious = sizes[small] > 0 && Math.Round(fraction, 2) < Math.Round(options.SizeThreshold, 2)
            && (options.Analysis == ClusterAnalysis.RelativeSize || silhouette >= options.SilhouetteThreshold);
        if (!suspicious) return new(new ClassAnalysis(activations.Label, members.Length, 0, fraction, silhouette, false), []);
        var large = 1 - small;
        var centre = new double[dimensions];
        for (var k = 0; k < members.Length; k++)
            if (assignment[k] == large)
                for (var d = 0; d < dimensions; d++) centre[d] += points[k * dimensions + d] / sizes[large];
        FlaggedSample[] flagged = [.. Enumerable.Range(0, members.Length).Where(k => assignment[k] == small)
            .Select(k => new FlaggedSample(members[k], activations.Label, Math.Sqrt(Enumerable.Range(0, dimensions).Sum(d => Math.Pow(points[k * dimensions + d] - centre[d], 2)))))];
        return new(new ClassAnalysis(activations.Label, members.Length, flagged.Length, fraction, silhouette, true), flagged);
    }

    /// <summary>PCA: the centred activations projected on their top <paramref name="dimensions"/> principal directions (row-major).</summary>
    internal static (float[] Points, int Dimensions) Reduce(ClassActivations activations, int dimensions)
    {
        using var scope = NewDisposeScope();
        var x = activations.Matrix();
        var centred = x - x.mean([0]);
        var kept = (int)Math.Min(dimensions, Math.Min(centred.shape[0], centred.shape[1]));
        var (_, _, vh) = linalg.svd(centred, fullMatrices: false);
        var projected = centred.matmul(vh[..kept].t()).to(ScalarType.Float32).contiguous();
        return (projected.data<float>().ToArray(), kept);
    }

    /// <summary>The mean silhouette coefficient of a 2-cluster assignment (Euclidean, as scikit-learn's silhouette_score; 0 for a lone member).</summary>
    internal static double Silhouette(float[] points, int dimensions, int[] assignment)
    {
        using var scope = NewDisposeScope();
        var count = assignment.Length;
        var x = tensor(points).reshape(count, dimensions).to(ScalarType.Float64);
        var labels = tensor(assignment);
        var inCluster = new[] { (labels == 0).to(ScalarType.Float64), (labels == 1).to(ScalarType.Float64) };
        var sizes = new[] { inCluster[0].sum().item<double>(), inCluster[1].sum().item<double>() };
        if (sizes[0] == 0 || sizes[1] == 0) return 0;
        var total = 0.0;
        const int Chunk = 512;
        for (var start = 0; start < count; start += Chunk)
        {
            using var inner = NewDisposeScope();
            var length = Math.Min(Chunk, count - start);
            var distances = cdist(x.narrow(0, start, length), x);
            var toCluster = new[] { distances.matmul(inCluster[0]), distances.matmul(inCluster[1]) };
            var own = assignment.AsSpan(start, length);
            var sums0 = toCluster[0].data<double>().ToArray();
            var sums1 = toCluster[1].data<double>().ToArray();
            for (var k = 0; k < length; k++)
            {
                var c = own[k];
                var ownSize = sizes[c] - 1;
                if (ownSize <= 0) continue;
                var a = (c == 0 ? sums0[k] : sums1[k]) / ownSize;
                var b = (c == 0 ? sums1[k] : sums0[k]) / sizes[1 - c];
                total += (b - a) / Math.Max(Math.Max(a, b), 1e-300);
            }
        }
        return total / count;
    }
}
