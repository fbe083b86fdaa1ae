using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Modeling;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Extraction;

/// <summary>What the victim answered for one query: the label (null when it refused or abstained without one) and, with scores access, the probabilities.</summary>
public sealed record VictimAnswer(int? Label, float[]? Probabilities);

/// <summary>The model under attack, as the attacker reaches it: by queries only, each one counted.</summary>
public interface IVictim
{
    /// <summary>True when answers carry probabilities (scores access); false for labels only.</summary>
    bool Scores { get; }

    Task<IReadOnlyList<VictimAnswer>> QueryAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken);
}

/// <summary>A local model as the victim (for experiments without a running service).</summary>
public sealed class PackageVictim(Module<Tensor, Tensor> network, bool scores) : IVictim
{
    public bool Scores => scores;

    public Task<IReadOnlyList<VictimAnswer>> QueryAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        using var classifier = new NetworkClassifier(network);
        using var noGrad = no_grad();
        var batch = tensor(images.SelectMany(i => i).ToArray(), [images.Count, 1, 28, 28]);
        var probabilities = functional.softmax(classifier.Logits(batch), 1).data<float>().ToArray();
        IReadOnlyList<VictimAnswer> answers = [.. Enumerable.Range(0, images.Count).Select(i =>
        {
            var p = probabilities.AsSpan(i * 10, 10).ToArray();
            return new VictimAnswer(p.AsSpan().IndexOf(p.Max()), scores ? p : null);
        })];
        return Task.FromResult(answers);
    }
}

/// <summary>How the attacker chooses queries.</summary>
public enum ExtractionStrategy
{
    /// <summary>Random images from a surrogate pool (Orekondy et al.'s Knockoff Nets, random policy); past the pool's size, shifted copies.</summary>
    Knockoff,
    /// <summary>Jacobian-based dataset augmentation (Papernot et al. 2017): seed images, then steps of lambda along the sign of the substitute's gradient.</summary>
    Jacobian,
}

/// <param name="Budgets">Query budgets to report, ascending; the queries of a smaller budget are the first ones of a larger.</param>
/// <param name="SeedImages">Jacobian: real images the attack starts from (Papernot et al.: 150).</param>
/// <param name="Lambda">Jacobian: the step along the gradient sign (0.1).</param>
/// <param name="TransferImages">Test images PGD examples are crafted on (against the substitute) to measure transfer to the victim.</param>
/// <param name="MinimumTrainingSteps">Each substitute trains for 10 epochs of its answers and at least this many steps of 64 (Adam, 1e-3).</param>
public sealed record ExtractionOptions(
    ExtractionStrategy Strategy = ExtractionStrategy.Knockoff, IReadOnlyList<int>? Budgets = null, int SeedImages = 150, double Lambda = 0.1,
    string Architecture = Architectures.SeedCnn, int BatchSize = 32, int TransferImages = 1000, double TransferEpsilon = 0.3, int Seed = 1, int MinimumTrainingSteps = 1500)
{
    public IReadOnlyList<int> BudgetList => Budgets ?? [500, 2000];

    public void Validate()
    {
        if (BudgetList.Count == 0) throw new ArgumentException("give at least one query budget");
        if (BudgetList.Any(b => b is < 10 or > 1_000_000)) throw new ArgumentOutOfRangeException(nameof(Budgets), "each budget is 10 to 1,000,000 queries");
        if (!BudgetList.SequenceEqual(BudgetList.Order().Distinct())) throw new ArgumentException("budgets must be distinct and ascending, e.g. 500,2000,10000");
        if (Strategy == ExtractionStrategy.Jacobian && SeedImages >= BudgetList[0]) throw new ArgumentException($"the Jacobian attack's {SeedImages} seed images must be fewer than the smallest budget ({BudgetList[0]})");
        ArgumentOutOfRangeException.ThrowIfLessThan(SeedImages, 10);
        if (Lambda is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(Lambda), Lambda, "lambda must be in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(BatchSize, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(TransferImages);
        ArgumentOutOfRangeException.ThrowIfLessThan(MinimumTrainingSteps, 1);
        if (TransferEpsilon is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TransferEpsilon), TransferEpsilon, "eps must be in (0, 1]");
        _ = Architectures.Create(Architecture).parameters(); // refuses an unknown name
    }
}

/// <summary>
/// One budget's stolen copy: its accuracy on the test set, its fidelity (agreement with the victim's labels on the test set), and the
/// transfer rate: of the test images the victim classifies correctly, the share whose PGD examples crafted on the copy fool the victim.
/// <paramref name="Answered"/> counts queries that came back with a label (refused or abstained ones teach the copy nothing).
/// </summary>
public sealed record ExtractionPoint(int Budget, int Answered, double SubstituteAccuracy, double Fidelity, double TransferRate, int TransferImages, double QuerySeconds, double TrainSeconds);

public sealed record ExtractionReport(ExtractionStrategy Strategy, bool Scores, string Pool, IReadOnlyList<ExtractionPoint> Points, double VictimAccuracy);

/// <summary>
/// Model extraction: query the victim within a budget, train a substitute on its answers (hard labels, or its probabilities with
/// scores access), and measure what the copy is worth: accuracy, fidelity and, the real harm, how well evasion examples crafted on the
/// copy transfer to the victim.
/// </summary>
public static class ModelExtraction
{
    /// <param name="pool">Surrogate images the attacker owns (pixels in [0, 1], 784 each); labels are never used.</param>
    /// <param name="reference">The victim's own network, for the defender's measurement only (fidelity and transfer), never queried by the attack.</param>
    /// <param name="keepLast">Called with the largest budget's substitute before it is disposed (to save it).</param>
    public static async Task<ExtractionReport> RunAsync(IVictim victim, IReadOnlyList<float[]> pool, string poolName, LabeledImages test, Module<Tensor, Tensor> reference,
        ExtractionOptions options, IProgress<string>? progress = null, CancellationToken cancellationToken = default, Action<Module<Tensor, Tensor>>? keepLast = null)
    {
        ArgumentNullException.ThrowIfNull(victim);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (pool.Count == 0) throw new ArgumentException("the surrogate pool is empty", nameof(pool));
        var random = new SeededRandom(options.Seed);
        var queries = new List<float[]>();
        var answers = new List<VictimAnswer>();
        var querySeconds = 0.0;
        async Task Ask(IReadOnlyList<float[]> images)
        {
            var watch = Stopwatch.StartNew();
            for (var start = 0; start < images.Count; start += options.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = images.Skip(start).Take(options.BatchSize).ToList();
                answers.AddRange(await victim.QueryAsync(batch, cancellationToken).ConfigureAwait(false));
                queries.AddRange(batch);
            }
            querySeconds += watch.Elapsed.TotalSeconds;
        }

        using var testImages = test.ImagesTensor();
        var victimLabels = Predict(reference, testImages);
        var victimAccuracy = Share(victimLabels, test.Labels);
        var points = new List<ExtractionPoint>();
        Module<Tensor, Tensor>? substitute = null;
        try
        {
            if (options.Strategy == ExtractionStrategy.Knockoff)
            {
                var order = KnockoffOrder(pool, options.BudgetList[^1], random);
                foreach (var budget in options.BudgetList)
                {
                    progress?.Report($"knockoff: querying up to {budget}");
                    await Ask(order.Skip(queries.Count).Take(budget - queries.Count).ToList()).ConfigureAwait(false);
                    substitute?.Dispose();
                    substitute = Measure(budget);
                }
            }
            else
            {
                var seeds = Enumerable.Range(0, options.SeedImages).Select(_ => pool[random.Next(pool.Count)]).ToList();
                await Ask(seeds).ConfigureAwait(false);
                var round = 0;
                foreach (var budget in options.BudgetList)
                {
                    while (queries.Count < budget)
                    {
                        substitute?.Dispose();
                        substitute = Train(queries.Count);
                        // Papernot et al.: every known point steps along the sign of the substitute's gradient of its label's score; the
                        // step's sign flips every third round so the set does not drift off the data.
                        var sign = round++ / 3 % 2 == 0 ? 1.0 : -1.0;
                        var steps = Augment(substitute, Labelled().ToList(), options.Lambda * sign);
                        if (steps.Count == 0) throw new InvalidOperationException("the victim answered none of the seed queries with a label; nothing to augment");
                        progress?.Report($"jacobian round {round}: {queries.Count} queries so far");
                        await Ask(steps.Take(budget - queries.Count).ToList()).ConfigureAwait(false);
                    }
                    substitute?.Dispose();
                    substitute = Measure(budget);
                }
            }
        }
        finally
        {
            if (substitute is not null) keepLast?.Invoke(substitute);
            substitute?.Dispose();
        }
        return new ExtractionReport(options.Strategy, victim.Scores, poolName, points, victimAccuracy);

        IEnumerable<(float[] Image, int Label)> Labelled() =>
            queries.Zip(answers).Where(p => p.Second.Label is not null).Select(p => (p.First, p.Second.Label!.Value));

        Module<Tensor, Tensor> Train(int count)
        {
            progress?.Report($"training the substitute on {count} answers");
            return SubstituteTraining.Train(queries.Take(count).ToList(), answers.Take(count).ToList(), options, cancellationToken);
        }

        Module<Tensor, Tensor> Measure(int budget)
        {
            var watch = Stopwatch.StartNew();
            var copy = Train(budget);
            var trainSeconds = watch.Elapsed.TotalSeconds;
            var copyLabels = Predict(copy, testImages);
            var transfer = TransferRate(copy, reference, test, victimLabels, options);
            points.Add(new ExtractionPoint(budget, answers.Take(budget).Count(a => a.Label is not null), Share(copyLabels, test.Labels),
                Share(copyLabels, victimLabels.Select(l => (byte)l).ToArray()), transfer.Rate, transfer.Images, querySeconds, trainSeconds));
            return copy;
        }
    }

    private static List<float[]> Augment(Module<Tensor, Tensor> substitute, IReadOnlyList<(float[] Image, int Label)> points, double lambda)
    {
        var result = new List<float[]>(points.Count);
        using var classifier = new NetworkClassifier(substitute);
        for (var start = 0; start < points.Count; start += 500)
        {
            using var scope = NewDisposeScope();
            var chunk = points.Skip(start).Take(500).ToList();
            var x = tensor(chunk.SelectMany(p => p.Image).ToArray(), [chunk.Count, 1, 28, 28]).requires_grad_(true);
            var labels = tensor(chunk.Select(p => (long)p.Label).ToArray());
            var score = classifier.Logits(x).gather(1, labels.unsqueeze(1)).sum();
            var gradient = autograd.grad([score], [x])[0];
            var stepped = (x.detach() + lambda * gradient.sign()).clamp(0, 1).reshape(chunk.Count, -1).data<float>().ToArray();
            for (var i = 0; i < chunk.Count; i++) result.Add(stepped.AsSpan(i * 784, 784).ToArray());
        }
        return result;
    }

    private static (double Rate, int Images) TransferRate(Module<Tensor, Tensor> substitute, Module<Tensor, Tensor> victim, LabeledImages test, int[] victimLabels, ExtractionOptions options)
    {
        if (options.TransferImages == 0) return (0, 0);
        var subset = test.Take(options.TransferImages);
        var correct = Enumerable.Range(0, subset.Count).Where(i => victimLabels[i] == subset.Labels[i]).ToArray();
        if (correct.Length == 0) return (0, 0);
        var chosen = subset.Select(correct);
        using var scope = NewDisposeScope();
        using var substituteClassifier = new NetworkClassifier(substitute);
        var images = chosen.ImagesTensor();
        var labels = chosen.LabelsTensor();
        var pgd = new Pgd(new PgdOptions(options.TransferEpsilon, options.TransferEpsilon / 30, 40, Seed: options.Seed));
        var adversarial = Serving.InputGuardEvaluation.Chunks(images, labels, 500, (x, y) => pgd.Generate(substituteClassifier, x, y));
        var fooled = Predict(victim, adversarial).Where((p, i) => p != chosen.Labels[i]).Count();
        return ((double)fooled / chosen.Count, chosen.Count);
    }

    /// <summary>
    /// The knockoff queries: the pool in a random order, each image once; a budget beyond the pool's size goes round it again, each image
    /// shifted by an offset of up to 2 pixels it has not had yet (24 offsets, in a random order per image), so no query repeats an earlier
    /// one and teaches the copy nothing until a budget exceeds 25 times the pool.
    /// </summary>
    internal static List<float[]> KnockoffOrder(IReadOnlyList<float[]> pool, int budget, SeededRandom random)
    {
        var offsets = (from dy in Enumerable.Range(-2, 5) from dx in Enumerable.Range(-2, 5) where dx != 0 || dy != 0 select (dx, dy)).ToArray();
        var order = new List<float[]>(budget);
        var indices = Enumerable.Range(0, pool.Count).ToArray();
        var offsetOrders = new Dictionary<int, (int Dx, int Dy)[]>();
        for (var pass = 0; order.Count < budget; pass++)
        {
            random.Shuffle(indices.AsSpan());
            foreach (var index in indices.Take(budget - order.Count))
            {
                if (pass == 0)
                {
                    order.Add(pool[index]);
                    continue;
                }
                if (!offsetOrders.TryGetValue(index, out var mine))
                {
                    mine = (((int, int)[])offsets.Clone());
                    random.Shuffle(mine.AsSpan());
                    offsetOrders[index] = mine;
                }
                var (dx, dy) = mine[(pass - 1) % mine.Length];
                order.Add(Shifted(pool[index], dx, dy));
            }
        }
        return order;
    }

    /// <summary>A 28x28 image moved <paramref name="dx"/> columns right and <paramref name="dy"/> rows down, with zeros shifted in.</summary>
    internal static float[] Shifted(float[] image, int dx, int dy)
    {
        var shifted = new float[image.Length];
        for (var row = Math.Max(0, dy); row < Math.Min(28, 28 + dy); row++)
            for (var column = Math.Max(0, dx); column < Math.Min(28, 28 + dx); column++)
                shifted[row * 28 + column] = image[(row - dy) * 28 + column - dx];
        return shifted;
    }

    private static int[] Predict(Module<Tensor, Tensor> network, Tensor images)
    {
        using var classifier = new NetworkClassifier(network);
        return classifier.Predict(images);
    }

    private static double Share(int[] predicted, IReadOnlyList<byte> truth) => (double)predicted.Where((p, i) => p == truth[i]).Count() / predicted.Length;
}

/// <summary>Trains a substitute from the victim's answers: cross-entropy on labels, or on the victim's probabilities with scores access.</summary>
internal static class SubstituteTraining
{
    public static Module<Tensor, Tensor> Train(IReadOnlyList<float[]> images, IReadOnlyList<VictimAnswer> answers, ExtractionOptions options, CancellationToken cancellationToken)
    {
        var usable = images.Zip(answers).Where(p => p.Second.Label is not null).ToList();
        manual_seed(options.Seed);
        var network = Architectures.Create(options.Architecture);
        if (usable.Count == 0) return network;
        var x = tensor(usable.SelectMany(p => p.First).ToArray(), [usable.Count, 1, 28, 28]);
        var soft = usable.All(p => p.Second.Probabilities is { Length: 10 });
        var targets = soft
            ? tensor(usable.SelectMany(p => p.Second.Probabilities!).ToArray(), [usable.Count, 10])
            : tensor(usable.Select(p => (long)p.Second.Label!.Value).ToArray());
        using var optimizer = optim.Adam(network.parameters(), 1e-3);
        // At least 10 epochs, and a floor of steps so small budgets are not under-trained.
        var steps = Math.Max(10 * (int)Math.Ceiling(usable.Count / 64.0), options.MinimumTrainingSteps);
        var random = new SeededRandom(options.Seed);
        network.train();
        for (var step = 0; step < steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var index = tensor(Enumerable.Range(0, Math.Min(64, usable.Count)).Select(_ => (long)random.Next(usable.Count)).ToArray());
            var logits = network.call(x.index_select(0, index));
            var loss = soft
                ? -(targets.index_select(0, index) * functional.log_softmax(logits, 1)).sum(1).mean()
                : functional.cross_entropy(logits, targets.index_select(0, index));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
        network.eval();
        x.Dispose();
        targets.Dispose();
        return network;
    }
}
