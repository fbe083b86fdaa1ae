using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using static TorchSharp.torch;

namespace SecureMnist.Evaluation;

/// <summary>
/// Settings of the gradient-masking checks. The defaults follow the acceptance bars a reviewer applies (Carlini et al. 2019, "On
/// Evaluating Adversarial Robustness"; Croce &amp; Hein 2020): eps 1.0 must leave at most 1%; going from 100 to
/// <paramref name="LongSteps"/> APGD steps, or from 1 to <paramref name="Restarts"/> restarts, may change accuracy by at most
/// <paramref name="ConvergencePoints"/> points; Square may sit at most <paramref name="BlackBoxGapPoints"/> points below the white-box
/// worst case; a transfer attack may not beat the white-box one; at most <paramref name="ZeroGradientShare"/> of inputs may have an
/// all-zero gradient.
/// </summary>
public sealed record RobustnessCheckOptions(
    double Epsilon = 0.3,
    IReadOnlyList<double>? SweepEpsilons = null,
    int Steps = 100,
    int LongSteps = 1000,
    int Restarts = 5,
    int SquareQueries = 5000,
    int ApgdTargets = 9,
    double SweepCeiling = 0.01,
    double ConvergencePoints = 0.3,
    double BlackBoxGapPoints = 0.5,
    double ZeroGradientShare = 0.01,
    int Seed = 0)
{
    public IReadOnlyList<double> Sweep => SweepEpsilons ?? [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0];

    public void Validate()
    {
        if (!(Epsilon > 0 && Epsilon <= 1)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "eps must be in (0, 1]");
        if (Sweep.Count == 0 || Sweep.Any(e => !(e > 0 && e <= 1))) throw new ArgumentException("the eps sweep needs values in (0, 1]", nameof(SweepEpsilons));
        if (Math.Abs(Sweep.Max() - 1.0) > 1e-12) throw new ArgumentException("the eps sweep must end at 1.0, where any image can be turned into any other", nameof(SweepEpsilons));
        if (Steps <= 0) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "APGD steps must be at least 1");
        if (LongSteps <= Steps) throw new ArgumentOutOfRangeException(nameof(LongSteps), LongSteps, $"the long run needs more steps than the short one ({Steps})");
        if (Restarts < 2) throw new ArgumentOutOfRangeException(nameof(Restarts), Restarts, "the restart check needs at least 2 restarts");
        new SquareOptions(Epsilon, SquareQueries).Validate();
        if (ApgdTargets is < 1 or > 9) throw new ArgumentOutOfRangeException(nameof(ApgdTargets), ApgdTargets, "APGD-T targets must be in [1, 9]");
        foreach (var (name, value) in new[] { (nameof(SweepCeiling), SweepCeiling), (nameof(ConvergencePoints), ConvergencePoints), (nameof(BlackBoxGapPoints), BlackBoxGapPoints), (nameof(ZeroGradientShare), ZeroGradientShare) })
            if (!(value >= 0) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException(name, value, "a check's bar must be a finite number >= 0");
    }
}

/// <summary>One check: whether it passed, the rule it applies, and the numbers behind it (accuracies as fractions).</summary>
public sealed record RobustnessCheck(string Name, bool? Passed, string Rule, IReadOnlyDictionary<string, double> Figures, string? Note = null)
{
    public const string EpsilonSweep = "eps-sweep";
    public const string StepConvergence = "step-convergence";
    public const string RestartConvergence = "restart-convergence";
    public const string BlackBoxGap = "black-box-gap";
    public const string Transfer = "transfer";
    public const string ZeroGradients = "zero-gradients";

    public static IReadOnlyList<string> All { get; } = [EpsilonSweep, StepConvergence, RestartConvergence, BlackBoxGap, Transfer, ZeroGradients];
}

/// <summary>
/// The gradient-masking suite on one model: the white-box worst case it checks, each check, and <paramref name="AllAttacksAccuracy"/>, the
/// per-input worst case over every attack the checks ran at the checked eps (white box, the long and restarted APGD, Square, transfer).
/// When a convergence check fails, that last figure is the honest one: the longer attacks found inputs the white box missed.
/// </summary>
public sealed record RobustnessCheckReport(int Images, double Epsilon, double CleanAccuracy, double WhiteBoxAccuracy, string WhiteBoxAttacks,
    IReadOnlyList<RobustnessCheck> Checks, double Seconds, double AllAttacksAccuracy)
{
    /// <summary>True when every check that ran passed; a skipped check (no transfer source) neither passes nor fails.</summary>
    public bool Passed => Checks.All(c => c.Passed != false);
}

/// <summary>
/// Checks that a robust accuracy is not an artefact of gradient masking. A model that only hides its gradients shows it in one of
/// these ways: a large eps does not bring accuracy to zero; more steps or restarts keep lowering it; a black-box attack, which needs
/// no gradient, does better than the white-box ones; examples crafted on another model transfer better than the model's own; or
/// gradients are exactly zero.
/// </summary>
public static class RobustnessChecks
{
    public static RobustnessCheckReport Run(IClassifier model, LabeledImages data, RobustnessCheckOptions options, IClassifier? transferSource = null,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = Stopwatch.StartNew();
        var settings = new AttackSettings { Epsilon = options.Epsilon, ApgdSteps = options.Steps, ApgdTargets = options.ApgdTargets, SquareQueries = options.SquareQueries, Seed = options.Seed };
        bool[] Robust(IReadOnlyList<IEvasionAttack> attacks, string what)
        {
            progress?.Report(what);
            var started = clock.Elapsed;
            var robust = AttackEvaluator.Run(model, data, attacks, cancellationToken: cancellationToken).Robust();
            progress?.Report($"  {100 * Share(robust):0.00}% of {robust.Length} in {(clock.Elapsed - started).TotalSeconds:0} s");
            return robust;
        }
        static double Share(bool[] robust) => robust.Length == 0 ? 0 : (double)robust.Count(r => r) / robust.Length;

        var clean = Robust([], "clean accuracy");
        var whiteBoxAttacks = AttackCatalog.Parse("apgd-ce,apgd-t", settings);
        var whiteBox = Robust(whiteBoxAttacks, $"white box: {string.Join(" + ", whiteBoxAttacks.Select(a => a.Name))}");
        var whiteBoxAccuracy = Share(whiteBox);
        var checks = new List<RobustnessCheck>();

        var shortRun = Robust([new Apgd(new ApgdOptions(options.Epsilon, options.Steps, Seed: options.Seed))], $"APGD-CE, {options.Steps} steps");

        // 1. Accuracy against eps up to 1.0, under APGD-CE with the same number of steps.
        var sweep = new Dictionary<string, double>();
        foreach (var eps in options.Sweep.Order())
        {
            var at = Math.Abs(eps - options.Epsilon) < 1e-12
                ? shortRun
                : Robust([new Apgd(new ApgdOptions(eps, options.Steps, Seed: options.Seed))], $"eps sweep: APGD-CE at eps {eps}");
            sweep[$"accuracy_at_{eps.ToString(System.Globalization.CultureInfo.InvariantCulture)}"] = Share(at);
        }
        var atOne = sweep["accuracy_at_1"];
        var values = sweep.Values.ToArray();
        var monotone = values.Zip(values.Skip(1)).All(p => p.Second <= p.First + 1e-12);
        checks.Add(new(RobustnessCheck.EpsilonSweep, Within(atOne, options.SweepCeiling) && monotone,
            $"accuracy at eps 1.0 <= {100 * options.SweepCeiling:0.##}% and never rising with eps", sweep));

        // 2. More steps: APGD-CE with 100 and with many more steps.
        var longRun = Robust([new Apgd(new ApgdOptions(options.Epsilon, options.LongSteps, Seed: options.Seed))], $"steps: APGD-CE, {options.LongSteps} steps");
        var stepChange = PointsLost(shortRun, longRun);
        checks.Add(new(RobustnessCheck.StepConvergence, Within(Math.Abs(stepChange), options.ConvergencePoints),
            $"APGD-CE {options.Steps} -> {options.LongSteps} steps changes accuracy by <= {options.ConvergencePoints} points",
            new Dictionary<string, double> { [$"accuracy_{options.Steps}_steps"] = Share(shortRun), [$"accuracy_{options.LongSteps}_steps"] = Share(longRun), ["change_points"] = stepChange }));

        // 3. More restarts.
        var restarted = Robust([new Apgd(new ApgdOptions(options.Epsilon, options.Steps, options.Restarts, Seed: options.Seed))], $"restarts: APGD-CE, {options.Restarts} restarts");
        var restartChange = PointsLost(shortRun, restarted);
        checks.Add(new(RobustnessCheck.RestartConvergence, Within(Math.Abs(restartChange), options.ConvergencePoints),
            $"APGD-CE 1 -> {options.Restarts} restarts changes accuracy by <= {options.ConvergencePoints} points",
            new Dictionary<string, double> { ["accuracy_1_restart"] = Share(shortRun), [$"accuracy_{options.Restarts}_restarts"] = Share(restarted), ["change_points"] = restartChange }));

        // 4. A black box that never sees a gradient.
        var square = Robust([new Square(new SquareOptions(options.Epsilon, options.SquareQueries, Seed: options.Seed))], $"black box: Square, {options.SquareQueries} queries");
        var gap = PointsLost(whiteBox, square);
        var squareOnly = whiteBox.Zip(square).Count(p => p.First && !p.Second);
        checks.Add(new(RobustnessCheck.BlackBoxGap, Within(gap, options.BlackBoxGapPoints),
            $"Square is at most {options.BlackBoxGapPoints} points below the white-box worst case",
            new Dictionary<string, double> { ["square_accuracy"] = Share(square), ["white_box_accuracy"] = whiteBoxAccuracy, ["gap_points"] = gap, ["broken_by_square_only"] = squareOnly }));

        // 5. Transfer from an independently trained model: PGD-100 (step eps/10, CE) crafted on the source, scored on this model.
        bool[]? transfer = null;
        if (transferSource is null)
        {
            checks.Add(new(RobustnessCheck.Transfer, null, "examples crafted on an independent model fool this one no more than its own white-box attacks",
                new Dictionary<string, double>(), "skipped: no source model given"));
        }
        else
        {
            progress?.Report("transfer: PGD-100 crafted on the source model");
            transfer = TransferAccuracy(model, transferSource, data, options, cancellationToken);
            var transferGap = PointsLost(whiteBox, transfer);
            checks.Add(new(RobustnessCheck.Transfer, Within(transferGap, options.BlackBoxGapPoints),
                $"transferred examples leave at most {options.BlackBoxGapPoints} points less than the white-box worst case",
                new Dictionary<string, double> { ["transfer_accuracy"] = Share(transfer), ["white_box_accuracy"] = whiteBoxAccuracy, ["gap_points"] = transferGap }));
        }

        // 6. Zero gradients at the clean input, for the cross-entropy and DLR losses (AutoAttack's check).
        progress?.Report("zero gradients");
        var (zeroCe, zeroDlr) = ZeroGradients(model, data);
        checks.Add(new(RobustnessCheck.ZeroGradients, Within(Math.Max(zeroCe, zeroDlr), options.ZeroGradientShare),
            $"at most {100 * options.ZeroGradientShare:0.##}% of inputs have an all-zero loss gradient",
            new Dictionary<string, double> { ["zero_gradient_share_ce"] = zeroCe, ["zero_gradient_share_dlr"] = zeroDlr }));

        bool[][] atEpsilon = transfer is null ? [whiteBox, shortRun, longRun, restarted, square] : [whiteBox, shortRun, longRun, restarted, square, transfer];
        return new RobustnessCheckReport(data.Count, options.Epsilon, Share(clean), whiteBoxAccuracy, string.Join(" + ", whiteBoxAttacks.Select(a => a.Name)), checks,
            clock.Elapsed.TotalSeconds, RobustnessRun.WorstCaseAccuracy(atEpsilon));
    }

    /// <summary>
    /// The points of accuracy <paramref name="after"/> loses against <paramref name="before"/>, from the counts of robust inputs: 3 inputs in
    /// 1,000 is 0.3 points exactly, where a difference of two shares is 0.30000000000000027 and fails a bar of 0.3.
    /// </summary>
    internal static double PointsLost(bool[] before, bool[] after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        if (before.Length != after.Length) throw new ArgumentException($"{before.Length} inputs before and {after.Length} after");
        return before.Length == 0 ? 0 : 100.0 * (before.Count(r => r) - after.Count(r => r)) / before.Length;
    }

    /// <summary>Whether a figure is at most its bar, allowing for the last bits of float rounding (a figure at the bar passes).</summary>
    internal static bool Within(double figure, double bar) => figure <= bar + 1e-9;

    private static bool[] TransferAccuracy(IClassifier model, IClassifier source, LabeledImages data, RobustnessCheckOptions options, CancellationToken cancellationToken)
    {
        var attack = new Pgd(new PgdOptions(options.Epsilon, options.Epsilon / 10, 100, Seed: options.Seed));
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        var predictions = new List<int>();
        const int batch = 500;
        for (long start = 0; start < data.Count; start += batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var length = Math.Min(batch, data.Count - start);
            var x = images.narrow(0, start, length);
            var adversarial = attack.Generate(source, x, labels.narrow(0, start, length));
            AttackEvaluator.CheckThreatModel(attack, x, adversarial);
            predictions.AddRange(model.Predict(adversarial));
        }
        var clean = model.Predict(images);
        return Enumerable.Range(0, data.Count).Select(i => clean[i] == data.Labels[i] && predictions[i] == data.Labels[i]).ToArray();
    }

    /// <summary>The shares of inputs whose cross-entropy and DLR gradients w.r.t. the input are exactly zero everywhere.</summary>
    internal static (double CrossEntropy, double Dlr) ZeroGradients(IClassifier model, LabeledImages data)
    {
        if (data.Count == 0) return (0, 0);
        using var scope = NewDisposeScope();
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        long zeroCe = 0, zeroDlr = 0;
        const int batch = 500;
        for (long start = 0; start < data.Count; start += batch)
        {
            using var batchScope = NewDisposeScope();
            var length = Math.Min(batch, data.Count - start);
            var x = images.narrow(0, start, length);
            var y = labels.narrow(0, start, length);
            foreach (var dlr in new[] { false, true })
            {
                using var enable = enable_grad();
                var input = x.detach().requires_grad_(true);
                var logits = model.Logits(input);
                var loss = dlr ? Apgd.DlrLoss(logits, y) : nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.None);
                var gradient = autograd.grad([loss.sum()], [input])[0];
                var zero = gradient.flatten(1).abs().amax(1).eq(0).sum().item<long>();
                if (dlr) zeroDlr += zero; else zeroCe += zero;
            }
        }
        return ((double)zeroCe / data.Count, (double)zeroDlr / data.Count);
    }
}
