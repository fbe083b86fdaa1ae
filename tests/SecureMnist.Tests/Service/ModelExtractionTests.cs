using SecureMnist.Attacks.Extraction;
using SecureMnist.Modeling;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

[Collection(ServedModelCollection.Name)]
public sealed class ModelExtractionTests(ServedModel model)
{
    private List<float[]> Pool(int count) => [.. Enumerable.Range(5000, count).Select(model.TestPixels)];

    private static ExtractionOptions Small(ExtractionStrategy strategy) =>
        new(strategy, [100, 300], SeedImages: 50, Architecture: Architectures.LinearSoftmax, TransferImages: 200, MinimumTrainingSteps: 300);

    [Theory]
    [InlineData(ExtractionStrategy.Knockoff, true)]
    [InlineData(ExtractionStrategy.Jacobian, false)]
    public async Task A_local_victim_is_copied_within_each_budget_and_the_copy_is_measured(ExtractionStrategy strategy, bool scores)
    {
        using var victim = SecureMnist.Security.ModelPackage.Load(model.PackageDirectory, SecureMnist.Security.TrustedPublicKey.FromFile(model.PublicKeyPath));
        var counting = new CountingVictim(new PackageVictim(victim.Network, scores));
        var report = await ModelExtraction.RunAsync(counting, Pool(2000), "mnist-test", model.Mnist.Test.Take(1000), victim.Network, Small(strategy));
        Assert.Equal([100, 300], report.Points.Select(p => p.Budget));
        Assert.Equal(300, counting.Queries); // never more than the largest budget
        Assert.All(report.Points, p => Assert.Equal(p.Budget, p.Answered));
        Assert.All(report.Points, p => Assert.InRange(p.Fidelity, 0.5, 1.0));
        Assert.All(report.Points, p => Assert.InRange(p.TransferRate, 0.0, 1.0));
        Assert.True(report.Points[1].Fidelity >= report.Points[0].Fidelity - 0.05, $"fidelity {report.Points[0].Fidelity:P1} -> {report.Points[1].Fidelity:P1}");
        Assert.Equal(scores, report.Scores);
    }

    /// <summary>A fresh API key file holding one predict key of <paramref name="imagesPerMinute"/>.</summary>
    private (string Path, string Secret) KeyFile(string name, int imagesPerMinute)
    {
        var folder = Path.Combine(model.Directory, "extract-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var keys = Path.Combine(folder, "api-keys.json");
        return (keys, ApiKeyStore.Add(keys, name, [ApiScopes.Predict], labelOnly: false, requestsPerMinute: imagesPerMinute));
    }

    [Fact]
    public async Task The_attack_runs_against_the_real_service_and_waits_out_its_rate_limit()
    {
        // 1,200 images a minute: a burst of 120, then 20 a second; the quota counts images, not requests.
        var (keys, secret) = KeyFile("thief", 1200);
        await using var service = await RunningService.Start(model.Options() with { ApiKeysPath = keys, Extraction = new ExtractionMonitorOptions(Action: ExtractionAction.Flag) });
        var victim = new HttpVictim(service.Client, secret, scores: true);
        using var reference = SecureMnist.Security.ModelPackage.Load(model.PackageDirectory, SecureMnist.Security.TrustedPublicKey.FromFile(model.PublicKeyPath));
        var options = Small(ExtractionStrategy.Knockoff) with { Budgets = [100, 300], BatchSize = 32 };
        var report = await ModelExtraction.RunAsync(victim, Pool(2000), "mnist-test", model.Mnist.Test.Take(500), reference.Network, options);
        Assert.Equal(2, report.Points.Count);
        Assert.True(report.Points[1].Answered >= 270, $"{report.Points[1].Answered} of 300 answered with a label");
        Assert.True(report.Points[1].Fidelity > 0.6, $"fidelity {report.Points[1].Fidelity:P1}");
        Assert.True(victim.RateLimited > 0, "300 images should exceed a burst of 120 plus what refills while the first copy trains");
        // 100 queries in 4 requests of up to 32, then 200 more in 7: each answered request audited once.
        Assert.Equal(4 + 7, service.AuditRecords().Where(r => r.KeyId == "thief" && r.Outcome != SecureMnist.Audit.AuditOutcome.RateLimited).Select(r => r.RequestId.Split('/')[0]).Distinct().Count());
    }

    [Fact]
    public async Task An_attacker_that_knows_its_quota_paces_itself_and_is_seldom_refused()
    {
        // 1,200 images a minute: a burst of 120, then 20 a second. 240 queries in batches of 24 (the service takes at most 32 in one list) exceed the burst by 120: 6 s of refill.
        var (keys, secret) = KeyFile("paced", 1200);
        await using var service = await RunningService.Start(model.Options() with { ApiKeysPath = keys });
        var pacer = new QueryPacer(1200);
        var victim = new HttpVictim(service.Client, secret, scores: false, pacer);
        var answers = new List<VictimAnswer>();
        foreach (var batch in Pool(240).Chunk(24)) answers.AddRange(await victim.QueryAsync(batch, CancellationToken.None));
        Assert.Equal(240, answers.Count);
        var requests = service.AuditRecords().Where(r => r.KeyId == "paced" && r.Outcome != SecureMnist.Audit.AuditOutcome.RateLimited).Select(r => r.RequestId.Split('/')[0]).Distinct().Count();
        Assert.Equal(10, requests); // none was split or sent twice
        // A busy server refills late (its ticks are timer callbacks), so the odd refusal happens; the pacer then counts from empty.
        Assert.True(victim.RateLimited <= 3, $"{victim.RateLimited} of 10 requests refused; the pacer keeps within the quota");
    }

    [Fact]
    public void The_pacer_spends_the_burst_at_once_then_waits_what_the_refill_needs()
    {
        var now = 0.0;
        var pacer = new QueryPacer(600, () => now); // a burst of 60, then 10 images a second
        Assert.Equal(60, pacer.Burst);
        Assert.Equal(TimeSpan.Zero, pacer.Reserve(60));
        Assert.Equal(3.2, pacer.Reserve(32).TotalSeconds, 9); // 32 more need 3.2 s of refill
        now = 3.2;
        Assert.Equal(0.1, pacer.Reserve(1).TotalSeconds, 9); // the debt is repaid; one more needs 0.1 s
        now = 100; // a long pause refills to the burst and no further
        Assert.Equal(TimeSpan.Zero, pacer.Reserve(60));
        Assert.True(pacer.Reserve(1) > TimeSpan.Zero);
        Assert.Equal(3.2 + 0.1 + 0.1, pacer.WaitedSeconds, 9);
        Assert.Throws<ArgumentOutOfRangeException>(() => pacer.Reserve(61)); // more than the bucket ever holds
        now = 200;
        Assert.Equal(0.6, pacer.Refused(5).TotalSeconds, 9); // refused: the debt stands, and the 5 are reserved again
        now = 300;
        pacer.Reserve(60);
        Assert.Equal(0.5, pacer.Refused(5).TotalSeconds, 9); // the service says empty although this copy had 0 left: count from empty
        Assert.Throws<ArgumentOutOfRangeException>(() => new QueryPacer(0));
    }

    [Fact]
    public void Knockoff_queries_past_the_pool_are_shifted_copies_and_none_repeats()
    {
        var pool = Pool(50);
        var order = ModelExtraction.KnockoffOrder(pool, 160, new SeededRandom(3));
        Assert.Equal(160, order.Count);
        Assert.Equal(50, order.Take(50).Distinct().Count()); // the first pass is the pool itself, each image once
        Assert.All(order.Take(50), q => Assert.Contains(q, pool));
        Assert.Equal(160, order.Select(q => string.Join(',', q)).Distinct().Count());
        // A shift moves the pixels and fills with zeros; shifting back restores the interior.
        var image = pool[0];
        var moved = ModelExtraction.Shifted(image, 2, -1);
        Assert.Equal(image[10 * 28 + 10], moved[9 * 28 + 12]);
        Assert.Equal(0f, moved[27 * 28 + 5]); // the bottom row came from outside the image
        var back = ModelExtraction.Shifted(moved, -2, 1);
        for (var row = 1; row < 28; row++)
            for (var column = 0; column < 26; column++)
                Assert.Equal(image[row * 28 + column], back[row * 28 + column]);
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new ExtractionOptions(Budgets: [2000, 500]).Validate());
        Assert.Throws<ArgumentException>(() => new ExtractionOptions(Budgets: []).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionOptions(Budgets: [5]).Validate());
        Assert.Throws<ArgumentException>(() => new ExtractionOptions(ExtractionStrategy.Jacobian, [100], SeedImages: 150).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExtractionOptions(Lambda: 0).Validate());
        Assert.Throws<ArgumentException>(() => new ExtractionOptions(Architecture: "vgg").Validate());
    }

    private sealed class CountingVictim(IVictim inner) : IVictim
    {
        public int Queries { get; private set; }

        public bool Scores => inner.Scores;

        public Task<IReadOnlyList<VictimAnswer>> QueryAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken)
        {
            Queries += images.Count;
            return inner.QueryAsync(images, cancellationToken);
        }
    }
}
