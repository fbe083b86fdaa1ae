using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Defenses;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Serving;

/// <summary>The service's two input checks, calibrated together: "is this a digit at all" and "is this digit adversarial".</summary>
public sealed record InputGuard(DigitStatistics Statistics, FeatureSqueezing Squeezing)
{
    /// <summary>
    /// Fits the digit statistics on the whole training set and calibrates feature squeezing on its first
    /// <paramref name="squeezeImages"/> images (never on test images, which measure it).
    /// </summary>
    public static InputGuard Calibrate(Module<Tensor, Tensor> network, LabeledImages train, int squeezeImages, SqueezingOptions options)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(squeezeImages, train.Count);
        var statistics = DigitStatistics.Fit(train);
        using var scope = NewDisposeScope();
        using var classifier = new NetworkClassifier(network);
        var calibration = train.Select(Enumerable.Range(0, squeezeImages).ToArray()).ImagesTensor();
        return new InputGuard(statistics, FeatureSqueezing.Calibrate(classifier, calibration, options));
    }
}

/// <summary>How often each check fires on one kind of input, and how often either does (the service refuses or flags those).</summary>
public sealed record InputCheckRates(string Inputs, int Count, double SqueezingFlagged, double StatisticsRejected, double Either);

/// <summary>
/// The model with its detector against one attack: the share of the attack's examples the model alone still classifies correctly
/// (<paramref name="RobustAccuracy"/>; for an adaptive attack, whose examples must also stay unflagged, this is not the model's robust
/// accuracy), the detection-adjusted robust accuracy (the share of inputs the attack did not get past both: still classified correctly,
/// or flagged by feature squeezing), and the share that evaded both (misclassified and not flagged). <paramref name="Adaptive"/> marks an
/// attack that knows the detector.
/// </summary>
public sealed record DetectionAdjustedRobustness(string Attack, bool Adaptive, int Count, double RobustAccuracy, double DetectionAdjustedAccuracy, double Evaded);

/// <summary>How well one uncertainty score tells clean test digits from Fashion-MNIST and from PGD examples: ROC AUC (0.5 is chance).</summary>
public sealed record UncertaintyAuroc(string Score, double? AurocFashion, double? AurocPgd);

/// <summary>The input checks measured on held-out data: on clean digits the rates are false positives, on attacks and non-digits true positives.</summary>
public sealed record InputGuardReport(double SqueezeThreshold, SqueezingOptions Squeezing, DigitStatistics Statistics, double Epsilon, IReadOnlyList<InputCheckRates> Rates, double Seconds,
    IReadOnlyList<DetectionAdjustedRobustness>? DetectionAdjusted = null, IReadOnlyList<UncertaintyAuroc>? Uncertainty = null);

public static class InputGuardEvaluation
{
    /// <summary>
    /// Both checks on clean test digits, on FGSM and PGD-40 examples at <paramref name="epsilon"/> (all, and those that
    /// fool the model) and on Fashion-MNIST test images.
    /// </summary>
    /// <param name="uncertainty">Optional scores of another way to abstain (MC dropout, an ensemble), named, for inputs: compared with the
    /// model's own max-softmax by how well they separate clean digits from Fashion-MNIST and from the PGD examples.</param>
    public static InputGuardReport Run(Module<Tensor, Tensor> network, InputGuard guard, LabeledImages mnistTest, LabeledImages? fashionTest, double epsilon, IProgress<string>? progress = null,
        SqueezingAwareOptions? adaptive = null, (string Name, Func<Tensor, UncertaintyScores> Scores)? uncertainty = null)
    {
        ArgumentNullException.ThrowIfNull(guard);
        ArgumentNullException.ThrowIfNull(mnistTest);
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var classifier = new NetworkClassifier(network);
        var images = mnistTest.ImagesTensor();
        var labels = mnistTest.LabelsTensor();
        var rates = new List<InputCheckRates>();
        InputCheckRates Measure(string name, Tensor inputs, bool[]? keep = null)
        {
            var scores = guard.Squeezing.Scores(classifier, inputs);
            var values = inputs.reshape(inputs.shape[0], -1).data<float>().ToArray();
            int count = 0, squeezed = 0, rejected = 0, either = 0;
            for (var i = 0; i < scores.Length; i++)
            {
                if (keep is not null && !keep[i]) continue;
                count++;
                var flagged = scores[i] > guard.Squeezing.Threshold;
                var outOfRange = guard.Statistics.Check(values.AsSpan(i * DigitImage.Pixels, DigitImage.Pixels)) is not null;
                squeezed += flagged ? 1 : 0;
                rejected += outOfRange ? 1 : 0;
                either += flagged || outOfRange ? 1 : 0;
            }
            double Share(int n) => count == 0 ? 0 : (double)n / count;
            return new InputCheckRates(name, count, Share(squeezed), Share(rejected), Share(either));
        }
        progress?.Report("clean test digits");
        rates.Add(Measure("clean MNIST test", images));
        IEvasionAttack[] attacks = [new Fgsm(new FgsmOptions(epsilon)), new Pgd(new PgdOptions(epsilon, 0.01, 40))];
        var cleanCorrect = classifier.Predict(images).Zip(mnistTest.Labels, (p, l) => p == l).ToArray();
        var adjusted = new List<DetectionAdjustedRobustness>();
        DetectionAdjustedRobustness Adjusted(IEvasionAttack attack, Tensor adversarial, bool isAdaptive)
        {
            var predictions = classifier.Predict(adversarial);
            var scores = guard.Squeezing.Scores(classifier, adversarial);
            int robust = 0, stopped = 0, evaded = 0;
            for (var i = 0; i < scores.Length; i++)
            {
                var correct = cleanCorrect[i] && predictions[i] == mnistTest.Labels[i];
                var flagged = scores[i] > guard.Squeezing.Threshold;
                robust += correct ? 1 : 0;
                stopped += correct || flagged ? 1 : 0;
                evaded += !correct && !flagged ? 1 : 0;
            }
            double Share(int n) => scores.Length == 0 ? 0 : (double)n / scores.Length;
            return new DetectionAdjustedRobustness(attack.Name, isAdaptive, scores.Length, Share(robust), Share(stopped), Share(evaded));
        }
        Tensor? pgdExamples = null;
        foreach (var attack in attacks)
        {
            progress?.Report($"crafting {attack.Name}");
            var adversarial = Chunks(images, labels, 500, (x, y) => attack.Generate(classifier, x, y));
            if (attack is Pgd) pgdExamples = adversarial;
            var fooled = classifier.Predict(adversarial).Zip(mnistTest.Labels, (p, l) => p != l).ToArray();
            rates.Add(Measure($"{attack.Name}, all", adversarial));
            rates.Add(Measure($"{attack.Name}, misclassified", adversarial, fooled));
            adjusted.Add(Adjusted(attack, adversarial, isAdaptive: false));
        }
        if (adaptive is not null)
        {
            // The attacker who knows the detector: the figure that says what the detector is worth.
            var aware = new SqueezingAwarePgd(adaptive with { Epsilon = epsilon }, guard.Squeezing);
            progress?.Report($"crafting {aware.Name}");
            var adversarial = Chunks(images, labels, 500, (x, y) => aware.Generate(classifier, x, y));
            AttackEvaluator.CheckThreatModel(aware, images, adversarial);
            var fooled = classifier.Predict(adversarial).Zip(mnistTest.Labels, (p, l) => p != l).ToArray();
            rates.Add(Measure($"{aware.Name}, all", adversarial));
            rates.Add(Measure($"{aware.Name}, misclassified", adversarial, fooled));
            adjusted.Add(Adjusted(aware, adversarial, isAdaptive: true));
        }
        var fashionImages = fashionTest?.ImagesTensor();
        if (fashionImages is not null)
        {
            progress?.Report("Fashion-MNIST");
            rates.Add(Measure("Fashion-MNIST test", fashionImages));
        }
        progress?.Report("uncertainty scores");
        var separation = Separation(("model alone", x => PredictiveUncertainty.Of([Probabilities(classifier, x)])), uncertainty, images, fashionImages, pgdExamples);
        return new InputGuardReport(guard.Squeezing.Threshold, guard.Squeezing.Options, guard.Statistics, epsilon, rates, stopwatch.Elapsed.TotalSeconds, adjusted, separation);
    }

    private static Tensor Probabilities(NetworkClassifier classifier, Tensor images)
    {
        using var _ = no_grad();
        return nn.functional.softmax(classifier.Logits(images), 1);
    }

    /// <summary>AUROC of each score for clean (negatives) against Fashion-MNIST and against PGD examples (positives).</summary>
    private static List<UncertaintyAuroc> Separation((string Name, Func<Tensor, UncertaintyScores> Scores) baseline, (string Name, Func<Tensor, UncertaintyScores> Scores)? other,
        Tensor clean, Tensor? fashion, Tensor? pgd)
    {
        var rows = new List<UncertaintyAuroc>();
        foreach (var (name, scorer) in other is { } o ? new[] { baseline, o } : [baseline])
        {
            var cleanScores = InChunks(scorer, clean);
            var fashionScores = fashion is null ? null : InChunks(scorer, fashion);
            var pgdScores = pgd is null ? null : InChunks(scorer, pgd);
            foreach (var (score, pick) in new (string, Func<UncertaintyScores, double[]>)[] { ("max-softmax", s => s.MaxSoftmax), ("entropy", s => s.Entropy), ("mutual information", s => s.MutualInformation) })
            {
                if (score == "mutual information" && name == baseline.Name) continue; // one member: no disagreement to measure
                rows.Add(new UncertaintyAuroc($"{name}: {score}",
                    fashionScores is null ? null : Evaluation.Roc.Auc(pick(fashionScores), pick(cleanScores)),
                    pgdScores is null ? null : Evaluation.Roc.Auc(pick(pgdScores), pick(cleanScores))));
            }
        }
        return rows;
    }

    /// <summary>Scores 500 inputs at a time, so memory stays bounded whatever the test set's size.</summary>
    private static UncertaintyScores InChunks(Func<Tensor, UncertaintyScores> scorer, Tensor images)
    {
        var parts = new List<UncertaintyScores>();
        for (long start = 0; start < images.shape[0]; start += 500)
        {
            using var scope = NewDisposeScope();
            parts.Add(scorer(images.narrow(0, start, Math.Min(500, images.shape[0] - start))));
        }
        return new UncertaintyScores([.. parts.SelectMany(p => p.MaxSoftmax)], [.. parts.SelectMany(p => p.Entropy)], [.. parts.SelectMany(p => p.MutualInformation)]);
    }

    internal static Tensor Chunks(Tensor images, Tensor labels, int size, Func<Tensor, Tensor, Tensor> generate)
    {
        var parts = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += size)
        {
            var length = Math.Min(size, images.shape[0] - start);
            parts.Add(generate(images.narrow(0, start, length), labels.narrow(0, start, length)).detach());
        }
        return cat(parts, 0);
    }
}
