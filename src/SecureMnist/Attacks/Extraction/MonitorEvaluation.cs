using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Serving;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Extraction;

/// <summary>One query stream against the monitor: when (if ever) its key was flagged, and by which signal.</summary>
public sealed record MonitoredStream(string Name, int Queries, int? FlaggedAt, string? Signal, double? LastW);

/// <summary>
/// The extraction monitor measured as the service runs it: attack streams (queries until flagged), benign keys (false alarms) and the
/// monitor's own cost per query.
/// </summary>
public sealed record MonitorEvaluationReport(ExtractionMonitorOptions Monitor, IReadOnlyList<MonitoredStream> Attacks, IReadOnlyList<MonitoredStream> Benign,
    int BenignFlagged, double MicrosecondsPerQuery, double Seconds);

/// <param name="BenignKeys">Keys each sending <paramref name="BenignQueries"/> random MNIST test digits.</param>
/// <param name="AttackBudget">Queries each attack may send.</param>
public sealed record MonitorEvaluationOptions(int BenignKeys = 20, int BenignQueries = 2000, int AttackBudget = 2000, int Seed = 1)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(BenignKeys, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(BenignQueries, 100);
        ArgumentOutOfRangeException.ThrowIfLessThan(AttackBudget, 300);
    }
}

public static class MonitorEvaluation
{
    /// <summary>
    /// Feeds the monitor exactly what the service would: each query's pixels, the model's class (none when the digit statistics refuse it)
    /// and whether it was refused or flagged by feature squeezing.
    /// </summary>
    private sealed class MonitoredVictim(IVictim inner, Func<IReadOnlyList<float[]>, (int? Class, bool Held)[]> decide, ExtractionMonitor monitor, string key, Stopwatch cost) : IVictim
    {
        public int Queries { get; private set; }
        public int? FlaggedAt { get; private set; }

        public bool Scores => inner.Scores;

        public async Task<IReadOnlyList<VictimAnswer>> QueryAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken)
        {
            var decisions = decide(images);
            for (var i = 0; i < images.Count; i++)
            {
                Queries++;
                cost.Start();
                var status = monitor.Observe(key, images[i], decisions[i].Class, decisions[i].Held);
                cost.Stop();
                if (status.Flagged) FlaggedAt ??= Queries;
            }
            return await inner.QueryAsync(images, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <param name="pools">Named surrogate pools for the knockoff attacks (e.g. mnist-test, fashion-mnist, noise).</param>
    public static async Task<MonitorEvaluationReport> RunAsync(Module<Tensor, Tensor> network, InputGuard guard, LabeledImages test, IReadOnlyDictionary<string, IReadOnlyList<float[]>> pools,
        ExtractionMonitorOptions monitorOptions, MonitorEvaluationOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guard);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(pools);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var watch = Stopwatch.StartNew();
        var monitor = new ExtractionMonitor(monitorOptions with { Action = ExtractionAction.Flag });
        var cost = new Stopwatch();
        long observed = 0;
        using var classifier = new NetworkClassifier(network);
        (int? Class, bool Held)[] Decide(IReadOnlyList<float[]> images)
        {
            using var scope = NewDisposeScope();
            var batch = tensor(images.SelectMany(i => i).ToArray(), [images.Count, 1, 28, 28]);
            var (probabilities, scores) = guard.Squeezing.ProbabilitiesAndScores(classifier, batch);
            var classes = probabilities.argmax(1).to(ScalarType.Int32).data<int>().ToArray();
            return [.. images.Select((pixels, i) => guard.Statistics.Check(pixels) is null ? ((int?)classes[i], scores[i] > guard.Squeezing.Threshold) : (null, true))];
        }

        var attacks = new List<MonitoredStream>();
        async Task Attack(string name, ExtractionOptions extraction, IReadOnlyList<float[]> pool)
        {
            progress?.Report($"attack: {name}");
            var victim = new MonitoredVictim(new PackageVictim(network, scores: false), Decide, monitor, name, cost);
            await ModelExtraction.RunAsync(victim, pool, name, test.Take(500), network, extraction, null, cancellationToken).ConfigureAwait(false);
            observed += victim.Queries;
            var status = monitor.Status(name);
            attacks.Add(new MonitoredStream(name, victim.Queries, victim.FlaggedAt, status.Signal, status.LastW));
        }
        var budget = new[] { options.AttackBudget };
        if (pools.TryGetValue("mnist-test", out var digits))
            await Attack("jacobian (Papernot et al., 150 seeds, lambda 0.1)", new ExtractionOptions(ExtractionStrategy.Jacobian, budget, TransferImages: 0, MinimumTrainingSteps: 300, Seed: options.Seed), digits).ConfigureAwait(false);
        foreach (var (poolName, pool) in pools)
            await Attack($"knockoff from {poolName}", new ExtractionOptions(ExtractionStrategy.Knockoff, budget, TransferImages: 0, MinimumTrainingSteps: 300, Seed: options.Seed), pool).ConfigureAwait(false);

        var benign = new List<MonitoredStream>();
        var random = new SeededRandom(options.Seed);
        for (var k = 0; k < options.BenignKeys; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report($"benign key {k + 1}/{options.BenignKeys}");
            var name = $"benign-{k + 1}";
            var images = Enumerable.Range(0, options.BenignQueries).Select(_ => test.Image(random.Next(test.Count)).ToArray().Select(b => b / 255f).ToArray()).ToList();
            int? flaggedAt = null;
            for (var start = 0; start < images.Count; start += 500)
            {
                var chunk = images.Skip(start).Take(500).ToList();
                var decisions = Decide(chunk);
                for (var i = 0; i < chunk.Count; i++)
                {
                    cost.Start();
                    var status = monitor.Observe(name, chunk[i], decisions[i].Class, decisions[i].Held);
                    cost.Stop();
                    if (status.Flagged) flaggedAt ??= start + i + 1;
                }
            }
            observed += images.Count;
            var final = monitor.Status(name);
            benign.Add(new MonitoredStream(name, images.Count, flaggedAt, final.Signal, final.LastW));
        }
        return new MonitorEvaluationReport(monitor.Options, attacks, benign, benign.Count(b => b.FlaggedAt is not null), cost.Elapsed.TotalMicroseconds / Math.Max(1, observed), watch.Elapsed.TotalSeconds);
    }
}
