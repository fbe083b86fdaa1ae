using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// Settings of HopSkipJump (Chen, Jordan and Wainwright 2020), untargeted, L2, with the paper's defaults: <see cref="InitialEvaluations"/>
/// boundary samples in the first gradient estimate, growing as sqrt(t) up to <see cref="MaxEvaluations"/>, and gamma 1 (the binary
/// search stops at gamma / d^1.5 of the way between the input and its adversarial point). <see cref="Queries"/> is the budget per input:
/// every label the model is asked for counts, the search for a starting point included.
/// </summary>
public sealed record HopSkipJumpOptions(int Queries = 1000, int InitialEvaluations = 100, int MaxEvaluations = 10_000, double Gamma = 1.0, int Seed = 0)
{
    public const int MaxQueries = 1_000_000;

    public void Validate()
    {
        if (Queries is < 20 or > MaxQueries) throw new ArgumentOutOfRangeException(nameof(Queries), Queries, $"HopSkipJump's queries per input must be 20 to {MaxQueries:N0}");
        if (InitialEvaluations is < 2 or > 100_000) throw new ArgumentOutOfRangeException(nameof(InitialEvaluations), InitialEvaluations, "the initial boundary samples must be 2 to 100,000");
        if (MaxEvaluations < InitialEvaluations || MaxEvaluations > 100_000)
            throw new ArgumentOutOfRangeException(nameof(MaxEvaluations), MaxEvaluations, "the most boundary samples must be at least the initial ones and at most 100,000");
        if (!(Gamma > 0 && Gamma <= 1000)) throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "gamma must be in (0, 1000]");
    }
}

/// <summary>
/// A decision-based black-box attack: it sees only the predicted label, never a score or a gradient, which is all a label-only API
/// gives. From an adversarial starting point (uniform noise that is misclassified, else another input of another class that is, pulled
/// in to the decision boundary by binary search)
/// it repeats: estimate the boundary's normal at the boundary point from the labels of random perturbations around it (Monte Carlo,
/// baseline-subtracted), step along it by a geometrically shrinking size until still adversarial, and binary-search back to the
/// boundary, each time closer to the input. The result is a minimum-L2 attack: it reports the distance it needed, like C&amp;W.
/// </summary>
public sealed class HopSkipJump(HopSkipJumpOptions options) : IEvasionAttack
{
    private readonly HopSkipJumpOptions options = Validated(options);

    private static HopSkipJumpOptions Validated(HopSkipJumpOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    public string Name => $"hopskipjump(queries={options.Queries})";
    public PerturbationNorm Norm => PerturbationNorm.L2;
    public double Epsilon => double.PositiveInfinity;
    public bool Targeted => false;

    /// <summary>Labels the model was asked for in the last <see cref="Generate"/> call, summed over inputs.</summary>
    public long LastQueries { get; private set; }

    public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (images.dim() != 4) throw new ArgumentException($"hopskipjump expects images [N, C, H, W], got [{string.Join(",", images.shape)}]");
        using var noGrad = no_grad();
        var generator = new Generator((ulong)options.Seed);
        var original = images.detach();
        LastQueries = 0;
        using var scope = NewDisposeScope();
        var results = new List<Tensor>();
        var classes = labels.to(ScalarType.Int64).cpu().data<long>().ToArray();
        for (var i = 0; i < original.shape[0]; i++) results.Add(Attack(model, original, classes, i, generator));
        return stack(results).detach().MoveToOuterDisposeScope();
    }

    /// <summary>One input: its closest adversarial point found within the budget, or the input itself when none was.</summary>
    private Tensor Attack(IClassifier model, Tensor batch, long[] classes, int index, Generator generator)
    {
        using var scope = NewDisposeScope();
        var (x, label) = (batch[index], classes[index]);
        var shape = x.shape;
        var d = x.numel();
        var theta = options.Gamma / (d * Math.Sqrt(d));
        var used = 0L;
        bool Remaining(long n) => used + n <= options.Queries;
        bool[] Adversarial(Tensor batch)
        {
            used += batch.shape[0];
            var logits = model.Logits(batch);
            return logits.argmax(1).ne(label).logical_and(RefusedAnswers.Mask(logits).logical_not()).data<bool>().ToArray();
        }

        // A starting point: uniform noise the model misclassifies, ten candidates at a time.
        Tensor? adversarial = null;
        for (var tries = 0; tries < 10 && adversarial is null && Remaining(10); tries++)
        {
            var noise = rand([10, .. shape], generator: generator);
            var hits = Adversarial(noise);
            var first = Array.IndexOf(hits, true);
            if (first >= 0) adversarial = noise[first].clone();
        }
        // Failing that, the other inputs of another class, ten at a time: real digits, which a service that abstains on noise still labels.
        var others = Enumerable.Range(0, classes.Length).Where(j => j != index && classes[j] != label).ToList();
        for (var start = 0; start < others.Count && adversarial is null && Remaining(Math.Min(10, others.Count - start)); start += 10)
        {
            var chosen = others.Skip(start).Take(10).ToArray();
            using var candidates = batch.index_select(0, tensor(chosen.Select(j => (long)j).ToArray()));
            var first = Array.IndexOf(Adversarial(candidates), true);
            if (first >= 0) adversarial = candidates[first].clone();
        }
        if (adversarial is null)
        {
            LastQueries += used;
            return x.clone().MoveToOuterDisposeScope();
        }

        Tensor BinarySearch(Tensor outside)
        {
            // x + alpha (outside - x): alpha 1 is adversarial; keep the adversarial end.
            double low = 0, high = 1;
            while (high - low > theta && Remaining(1))
            {
                var middle = (low + high) / 2;
                if (Adversarial((x + middle * (outside - x)).unsqueeze(0))[0]) high = middle;
                else low = middle;
            }
            return (x + high * (outside - x)).clamp(0, 1);
        }

        adversarial = BinarySearch(adversarial);
        var distance = (adversarial - x).norm().item<float>();
        for (var t = 1; ; t++)
        {
            // The boundary's normal, estimated from labels around the boundary point.
            var samples = (int)Math.Min(options.MaxEvaluations, options.InitialEvaluations * Math.Sqrt(t));
            samples = (int)Math.Min(samples, options.Queries - used - 1);
            if (samples < 2) break;
            var delta = t == 1 ? 0.1 : Math.Sqrt(d) * theta * distance;
            var directions = randn([samples, .. shape], generator: generator);
            directions /= directions.flatten(1).norm(1).clamp_min(1e-12).view([samples, .. Enumerable.Repeat(1L, shape.Length)]);
            var perturbed = (adversarial.unsqueeze(0) + delta * directions).clamp(0, 1);
            directions = (perturbed - adversarial.unsqueeze(0)) / delta;
            var signs = tensor(Adversarial(perturbed).Select(a => a ? 1f : -1f).ToArray()).view([samples, .. Enumerable.Repeat(1L, shape.Length)]);
            var mean = signs.mean().item<float>();
            var gradient = Math.Abs(mean) == 1 ? mean * directions.mean([0]) : ((signs - mean) * directions).mean([0]);
            var normal = gradient / gradient.norm().clamp_min(1e-12);

            // A step along it, halved until the point is still adversarial.
            var step = distance / Math.Sqrt(t);
            Tensor? next = null;
            while (Remaining(1) && step > 1e-6)
            {
                var candidate = (adversarial + step * normal).clamp(0, 1);
                if (Adversarial(candidate.unsqueeze(0))[0])
                {
                    next = candidate;
                    break;
                }
                step /= 2;
            }
            if (next is null) break;
            var closer = BinarySearch(next);
            var closerDistance = (closer - x).norm().item<float>();
            // The boundary point is adversarial by construction; keep the closest one seen.
            if (closerDistance < distance)
            {
                adversarial = closer;
                distance = closerDistance;
            }
            if (!Remaining(2)) break;
        }
        LastQueries += used;
        return adversarial.MoveToOuterDisposeScope();
    }
}
