namespace SecureMnist.Defenses;

/// <summary>2-means clustering (k-means++ start, several seeded restarts) on row-major points.</summary>
internal static class KMeans
{
    public static int[] TwoMeans(float[] points, int count, int dimensions, int seed, int restarts = 10, int iterations = 100)
    {
        var random = new SeededRandom(seed);
        int[]? best = null;
        var bestInertia = double.PositiveInfinity;
        for (var restart = 0; restart < restarts && count > 1; restart++)
        {
            var centres = new double[2][];
            centres[0] = Point(points, random.Next(count), dimensions);
            // k-means++: the second centre is drawn with probability proportional to the squared distance to the first.
            var weights = Enumerable.Range(0, count).Select(i => Distance2(points, i, centres[0], dimensions)).ToArray();
            var total = weights.Sum();
            var pick = random.NextDouble() * total;
            var second = 0;
            for (var i = 0; i < count; i++)
            {
                pick -= weights[i];
                if (pick <= 0) { second = i; break; }
            }
            centres[1] = Point(points, second, dimensions);
            var assignment = new int[count];
            for (var iteration = 0; iteration < iterations; iteration++)
            {
                var changed = false;
                for (var i = 0; i < count; i++)
                {
                    var nearest = Distance2(points, i, centres[0], dimensions) <= Distance2(points, i, centres[1], dimensions) ? 0 : 1;
                    changed |= nearest != assignment[i];
                    assignment[i] = nearest;
                }
                for (var c = 0; c < 2; c++)
                {
                    var sum = new double[dimensions];
                    var members = 0;
                    for (var i = 0; i < count; i++)
                    {
                        if (assignment[i] != c) continue;
                        members++;
                        for (var d = 0; d < dimensions; d++) sum[d] += points[i * dimensions + d];
                    }
                    if (members > 0) centres[c] = sum.Select(s => s / members).ToArray();
                }
                if (!changed && iteration > 0) break;
            }
            var inertia = Enumerable.Range(0, count).Sum(i => Distance2(points, i, centres[assignment[i]], dimensions));
            if (inertia < bestInertia)
            {
                bestInertia = inertia;
                best = assignment;
            }
        }
        return best ?? new int[count];
    }

    private static double[] Point(float[] points, int index, int dimensions) =>
        Enumerable.Range(0, dimensions).Select(d => (double)points[index * dimensions + d]).ToArray();

    private static double Distance2(float[] points, int index, double[] centre, int dimensions)
    {
        double sum = 0;
        for (var d = 0; d < dimensions; d++)
        {
            var diff = points[index * dimensions + d] - centre[d];
            sum += diff * diff;
        }
        return sum;
    }
}
