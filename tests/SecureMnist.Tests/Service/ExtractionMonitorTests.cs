using SecureMnist.Evaluation;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

public sealed class ExtractionMonitorTests
{
    [Fact]
    public void Shapiro_wilk_matches_the_published_example_and_separates_normal_from_skewed_samples()
    {
        // Shapiro and Wilk (1965): weights of 11 men in pounds; Royston's AS R94 (R's shapiro.test) gives W = 0.78881.
        Assert.Equal(0.78881, ShapiroWilk.W([148, 154, 158, 160, 161, 162, 166, 170, 182, 195, 236]), 3);
        var normal = Enumerable.Range(1, 500).Select(i => ShapiroWilk.NormalQuantile((i - 0.5) / 500)).ToArray();
        Assert.True(ShapiroWilk.W(normal) > 0.995);
        var exponential = Enumerable.Range(1, 500).Select(i => -Math.Log(1 - (i - 0.5) / 500)).ToArray();
        Assert.True(ShapiroWilk.W(exponential) < 0.93, $"W {ShapiroWilk.W(exponential)}");
        Assert.Equal(0.5 * Math.Sqrt(2), ShapiroWilk.Coefficients(3)[0], 12);
        foreach (var n in new[] { 4, 5, 6, 11, 100, 2048 })
            Assert.Equal(0.5, ShapiroWilk.Coefficients(n).Sum(a => a * a), 9); // 2 * sum(a^2) = 1
        Assert.Equal(1.959963985, ShapiroWilk.NormalQuantile(0.975), 7);
        Assert.Throws<ArgumentOutOfRangeException>(() => ShapiroWilk.W([1, 2]));
        Assert.Throws<ArgumentException>(() => ShapiroWilk.W([3, 3, 3, 3]));
    }

    [Fact]
    public void The_vectorised_distance_equals_the_plain_sum()
    {
        var random = new SeededRandom(3);
        foreach (var length in new[] { 784, 31, 65 })
        {
            var a = new byte[length];
            var b = new byte[length];
            random.NextBytes(a);
            random.NextBytes(b);
            Assert.Equal(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum(), ExtractionMonitor.SquaredDistance(a, b));
        }
    }

    private static float[] Pixels(SecureMnist.Data.LabeledImages images, int index) => [.. images.Image(index).ToArray().Select(p => p / 255f)];

    [Fact]
    public void Ordinary_digits_from_several_keys_are_not_flagged()
    {
        var test = TestPaths.Mnist().Test;
        var monitor = new ExtractionMonitor(new ExtractionMonitorOptions());
        var random = new SeededRandom(11);
        for (var key = 0; key < 4; key++)
            for (var q = 0; q < 1000; q++)
            {
                var index = random.Next(test.Count);
                monitor.Observe($"user{key}", Pixels(test, index), test.Labels[index], refusedOrFlagged: random.NextDouble() < 0.03);
            }
        Assert.All(monitor.Statuses(), s => Assert.False(s.Flagged, $"{s.KeyId}: {s.Reason}"));
        Assert.All(monitor.Statuses(), s => Assert.True(s.LastW > monitor.Options.Delta, $"{s.KeyId}: W {s.LastW}"));
    }

    [Theory]
    [InlineData(150, 0.25, null)]
    [InlineData(10, 1.0, "prada")] // the small-step signal off: PRADA's normality test alone
    public void Small_steps_from_seed_digits_are_flagged_within_a_few_hundred_queries(int seeds, double nearShare, string? signal)
    {
        // The query pattern of Jacobian-based augmentation (Papernot et al. 2017): each round steps every known image by
        // lambda times a sign pattern, so every new query sits at one fixed distance from an earlier one.
        var test = TestPaths.Mnist().Test;
        var monitor = new ExtractionMonitor(new ExtractionMonitorOptions(NearShare: nearShare));
        var random = new SeededRandom(5);
        // Papernot et al. start from 150 real test digits.
        var known = Enumerable.Range(0, seeds).Select(i => (Pixels: Pixels(test, i), Label: (int)test.Labels[i])).ToList();
        foreach (var (pixels, label) in known) monitor.Observe("attacker", pixels, label, false);
        ExtractionStatus status = monitor.Status("attacker");
        while (!status.Flagged && status.Queries < 1000)
        {
            foreach (var (pixels, label) in known.ToList())
            {
                var step = pixels.Select(p => Math.Clamp(p + (random.NextDouble() < 0.5 ? -0.1f : 0.1f), 0f, 1f)).ToArray();
                status = monitor.Observe("attacker", step, label, false);
                known.Add((step, label));
                if (status.Flagged) break;
            }
        }
        Assert.True(status.Flagged, $"not flagged after {status.Queries} queries (W {status.LastW})");
        Assert.InRange(status.Queries, seeds + 1, 300);
        if (signal is not null) Assert.Equal(signal, status.Signal);
        Assert.True(monitor.Clear("attacker"));
        Assert.False(monitor.Status("attacker").Flagged);
    }

    [Fact]
    public void Replicas_sharing_the_status_file_keep_each_others_flags()
    {
        var path = Path.Combine(TestPaths.NewScratchDirectory(), "api-keys.extraction.json");
        static ExtractionStatus Status(string key, bool flagged) => new(key, 100, flagged, flagged ? "prada" : null, null, null, null);
        ExtractionStatusFile.Merge(path, [Status("a", true), Status("b", false)]);
        ExtractionStatusFile.Merge(path, [Status("b", true), Status("a", false)]); // the second replica never saw a flag on a
        Assert.Equal(["a", "b"], ExtractionStatusFile.Load(path).Select(s => s.KeyId));
        ExtractionStatusFile.Save(path, [Status("b", true)]); // a plain save (api-keys clear-flag a) writes exactly what it is given
        Assert.Equal(["b"], ExtractionStatusFile.Load(path).Select(s => s.KeyId));
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    [Fact]
    public void A_key_whose_queries_keep_being_refused_is_flagged_and_memory_stays_bounded()
    {
        var monitor = new ExtractionMonitor(new ExtractionMonitorOptions(StoredPerKey: 64));
        var noise = new SeededRandom(2);
        for (var q = 0; q < 60; q++)
            monitor.Observe("surrogate", [.. Enumerable.Range(0, 784).Select(_ => (float)noise.NextDouble())], predictedClass: null, refusedOrFlagged: true);
        var status = monitor.Status("surrogate");
        Assert.True(status.Flagged);
        Assert.Equal("refusals", status.Signal);

        var test = TestPaths.Mnist().Test;
        for (var i = 0; i < 2000; i++) monitor.Observe("busy", Pixels(test, i), test.Labels[i], false);
        Assert.Equal(64, monitor.StoredImages("busy"));
        Assert.Equal(0, monitor.StoredImages("nobody"));
        Assert.False(monitor.Status("nobody").Flagged);
    }

    [Fact]
    public void Bad_options_and_inputs_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionMonitorOptions(Delta: 1).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionMonitorOptions(MinimumQueries: 5).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionMonitorOptions(Window: 50).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionMonitorOptions(Window: 6000).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionMonitorOptions(RefusedMinimum: 300).Validate());
        var monitor = new ExtractionMonitor(new ExtractionMonitorOptions());
        Assert.Throws<ArgumentException>(() => monitor.Observe("k", new float[10], 1, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => monitor.Observe("k", new float[784], 10, false));
        Assert.True(new ExtractionMonitorOptions().BytesPerKey < 512 * 1024);
    }
}
