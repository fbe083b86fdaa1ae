using SecureMnist.Attacks.Evasion;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

/// <summary>
/// APGD-T, FAB-T and Square against a linear softmax classifier, whose minimal L-inf flip is known in closed form: for z = Wx + b,
/// class k overtakes the true class y within radius r exactly when moving every pixel by r towards sign(w_k - w_y), each capped by
/// [0, 1], closes the gap z_y - z_k.
/// </summary>
public sealed class AutoAttackTests(TrainedLinearModel fixture) : IClassFixture<TrainedLinearModel>
{
    private (double[] W, double[] B) Weights()
    {
        var parameters = fixture.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        return (parameters["fc.weight"].data<float>().Select(v => (double)v).ToArray(), parameters["fc.bias"].data<float>().Select(v => (double)v).ToArray());
    }

    /// <summary>The smallest L-inf radius at which some other class reaches the true class's logit, by bisection on the closed form.</summary>
    private double[] MinimalFlips(float[] images, byte[] labels)
    {
        var (w, b) = Weights();
        var result = new double[labels.Length];
        for (var n = 0; n < labels.Length; n++)
        {
            var x = images.AsSpan(n * 784, 784).ToArray();
            int y = labels[n];
            double Gap(int k, double r)
            {
                // z_y - z_k after the best move of radius r towards class k.
                var gap = b[y] - b[k];
                for (var p = 0; p < 784; p++)
                {
                    var direction = w[k * 784 + p] - w[y * 784 + p];
                    var moved = Math.Clamp(x[p] + r * Math.Sign(direction), 0, 1);
                    gap -= direction * moved;
                }
                return gap;
            }
            var best = double.PositiveInfinity;
            for (var k = 0; k < 10; k++)
            {
                if (k == y || Gap(k, 1) > 0) continue;
                double low = 0, high = 1;
                if (Gap(k, 0) <= 0) { best = 0; break; }
                for (var i = 0; i < 60; i++)
                {
                    var middle = (low + high) / 2;
                    if (Gap(k, middle) > 0) low = middle; else high = middle;
                }
                best = Math.Min(best, high);
            }
            result[n] = best;
        }
        return result;
    }

    private (Tensor Images, Tensor Labels, double[] Flips) Correct(int count)
    {
        var data = fixture.Test.Take(count);
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        var flips = MinimalFlips(images.data<float>().ToArray(), data.Labels);
        var keep = Enumerable.Range(0, count).Where(i => flips[i] > 0 && !double.IsInfinity(flips[i])).Select(i => (long)i).ToArray();
        using var index = tensor(keep);
        return (images.index_select(0, index), labels.index_select(0, index), keep.Select(i => flips[i]).ToArray());
    }

    private static bool[] Broken(IClassifier model, Tensor adversarial, Tensor labels)
    {
        using var noGrad = no_grad();
        using var wrong = model.Logits(adversarial).argmax(1).ne(labels);
        return wrong.data<bool>().ToArray();
    }

    [Fact]
    public void Fab_t_finds_the_minimal_linf_flip_within_5_percent()
    {
        var (images, labels, flips) = Correct(40);
        using var classifier = new NetworkClassifier(fixture.Network);
        var (adversarial, norms) = new FabTargeted(new FabOptions(0.3)).MinimumNorms(classifier, images, labels);
        var found = norms.data<float>().ToArray();
        var broken = Broken(classifier, adversarial, labels);
        for (var i = 0; i < flips.Length; i++)
        {
            Assert.True(broken[i], $"input {i}: FAB-T found no example (analytic flip {flips[i]:F4})");
            Assert.True(found[i] >= flips[i] * (1 - 1e-3), $"input {i}: {found[i]:F5} is below the analytic minimum {flips[i]:F5}, which no attack can beat");
            Assert.True(found[i] <= flips[i] * 1.05, $"input {i}: FAB-T needed {found[i]:F5}, the analytic minimum is {flips[i]:F5}");
        }
    }

    [Fact]
    public void Fab_t_counts_only_examples_within_eps()
    {
        var (images, labels, flips) = Correct(40);
        var eps = flips.Order().ElementAt(flips.Length / 2);
        using var classifier = new NetworkClassifier(fixture.Network);
        var attack = new FabTargeted(new FabOptions(eps));
        using var adversarial = attack.Generate(classifier, images, labels);
        AttackEvaluator.CheckThreatModel(attack, images, adversarial);
        var broken = Broken(classifier, adversarial, labels);
        for (var i = 0; i < flips.Length; i++)
        {
            if (flips[i] > eps) Assert.False(broken[i], $"input {i} needs {flips[i]:F4} > eps {eps:F4}");
            if (flips[i] < eps * 0.95) Assert.True(broken[i], $"input {i} needs {flips[i]:F4}, well within eps {eps:F4}");
        }
    }

    [Fact]
    public void Linf_projection_onto_a_hyperplane_in_the_box_is_the_smallest_move()
    {
        using var generator = new Generator(7);
        using var points = rand([64, 30], generator: generator, dtype: ScalarType.Float64);
        using var w = randn([64, 30], generator: generator, dtype: ScalarType.Float64);
        w.index_fill_(1, tensor(new long[] { 3, 4 }), 0); // coordinates the plane ignores must not move
        using var target = rand([64, 30], generator: generator, dtype: ScalarType.Float64);
        using var b = (w * target).sum(1); // a plane through a point of the box, so every row can reach it
        using var move = FabTargeted.ProjectLInf(points, w, b);
        var moved = points + move;
        Assert.True(((w * moved).sum(1) - b).abs().max().item<double>() < 1e-9, "the moved point is on the plane");
        Assert.True(moved.min().item<double>() >= -1e-12 && moved.max().item<double>() <= 1 + 1e-12, "the moved point is in the box");
        Assert.Equal(0, move.index_select(1, tensor(new long[] { 3, 4 })).abs().max().item<double>());
        // Any point of the plane in the box is at least as far in L-inf: check against the box-capped move of radius 0.999 r.
        var radius = move.abs().amax(1);
        var gap = (w * points).sum(1) - b;
        var shorter = (points - gap.sign().unsqueeze(1) * w.sign() * (0.999 * radius).unsqueeze(1)).clamp(0, 1);
        var shorterGap = (w * shorter).sum(1) - b;
        Assert.True(shorterGap.mul(gap).gt(0).all().item<bool>(), "a radius 0.1% smaller does not reach the plane");
    }

    [Fact]
    public void Apgd_t_breaks_every_input_whose_minimal_flip_is_within_eps()
    {
        var (images, labels, flips) = Correct(60);
        var eps = flips.Order().ElementAt(flips.Length * 2 / 3);
        using var classifier = new NetworkClassifier(fixture.Network);
        var attack = new Apgd(new ApgdOptions(eps, Steps: 30, Loss: ApgdLoss.TargetedDlr));
        using var adversarial = attack.Generate(classifier, images, labels);
        AttackEvaluator.CheckThreatModel(attack, images, adversarial);
        var broken = Broken(classifier, adversarial, labels);
        for (var i = 0; i < flips.Length; i++)
        {
            if (flips[i] > eps) Assert.False(broken[i]);
            if (flips[i] < eps * 0.98) Assert.True(broken[i], $"input {i} needs {flips[i]:F4} < eps {eps:F4}, APGD-T missed it");
        }
    }

    [Fact]
    public void Square_finds_the_minimal_linf_flip_within_its_budget()
    {
        var (images, labels, flips) = Correct(60);
        var eps = flips.Order().ElementAt(flips.Length / 2);
        using var classifier = new NetworkClassifier(fixture.Network);
        var attack = new Square(new SquareOptions(eps, Queries: 5000));
        using var adversarial = attack.Generate(classifier, images, labels);
        AttackEvaluator.CheckThreatModel(attack, images, adversarial);
        var broken = Broken(classifier, adversarial, labels);
        var reachable = Enumerable.Range(0, flips.Length).Where(i => flips[i] < eps * 0.9).ToArray();
        Assert.NotEmpty(reachable);
        Assert.All(Enumerable.Range(0, flips.Length).Where(i => flips[i] > eps), i => Assert.False(broken[i]));
        var found = reachable.Count(i => broken[i]);
        Assert.True(found >= reachable.Length * 0.95, $"Square broke {found} of the {reachable.Length} inputs whose minimal flip is under 0.9 eps");
        Assert.True(attack.LastQueries <= (long)images.shape[0] * 5000);
    }

    [Fact]
    public void Square_never_uses_a_gradient()
    {
        var (images, labels, _) = Correct(30);
        using var classifier = new NetworkClassifier(fixture.Network);
        var blackBox = new NoGradientClassifier(classifier);
        var run = AttackEvaluator.Run(blackBox, fixture.Test.Take(30), [new Square(new SquareOptions(0.2, Queries: 200))]);
        Assert.True(run.Report.AttackSuccessRate > 0.5, $"success {run.Report.AttackSuccessRate:P0}");
        // The same classifier does refuse a gradient attack, so the check above is not vacuous.
        Assert.Throws<InvalidOperationException>(() => new Fgsm(new FgsmOptions(0.2)).Generate(blackBox, images, labels));
    }

    [Fact]
    public void Autoattack_expands_to_the_standard_set_in_its_order()
    {
        var attacks = AttackCatalog.Parse("autoattack", new AttackSettings { Epsilon = 0.3, SquareQueries = 1000, ApgdTargets = 3 });
        Assert.Equal(["apgd-ce", "apgd-t", "fab-t", "square"], attacks.Select(a => a.Name[..a.Name.IndexOf('(')]));
        Assert.Contains("targets=3", attacks[1].Name);
        Assert.Contains("queries=1000", attacks[3].Name);
        Assert.All(attacks, a => Assert.Equal(0.3, a.Epsilon));
    }

    [Fact]
    public void Robust_under_all_is_the_union_of_what_each_run_broke()
    {
        bool[] first = [true, false, true, true, false];
        bool[] second = [true, true, false, true, false];
        Assert.Equal([true, false, false, true, false], RobustnessRun.RobustUnderAll([first, second]));
        Assert.Equal(0.4, RobustnessRun.WorstCaseAccuracy([first, second]), 10);
        // The lowest of the two accuracies (60%) would overstate it.
        Assert.Throws<ArgumentException>(() => RobustnessRun.RobustUnderAll([first, [true]]));
    }

    /// <summary>FGSM that touches only inputs of the given labels (the clean image elsewhere): two of these break disjoint sets.</summary>
    private sealed class FgsmOnLabels(double eps, Func<long, bool> attacked) : IEvasionAttack
    {
        private readonly Fgsm fgsm = new(new FgsmOptions(eps));
        public string Name => $"fgsm-on-some-labels(eps={eps})";
        public PerturbationNorm Norm => PerturbationNorm.LInf;
        public double Epsilon => eps;
        public bool Targeted => false;

        public Tensor Generate(IClassifier model, Tensor images, Tensor labels)
        {
            using var scope = NewDisposeScope();
            var mask = tensor(labels.data<long>().ToArray().Select(attacked).ToArray()).view(-1, 1, 1, 1);
            return where(mask, fgsm.Generate(model, images, labels), images).MoveToOuterDisposeScope();
        }
    }

    [Fact]
    public void Two_attacks_that_break_disjoint_inputs_are_counted_as_their_union()
    {
        using var classifier = new NetworkClassifier(fixture.Network);
        var data = fixture.Test.Take(200);
        var even = AttackEvaluator.Run(classifier, data, [new FgsmOnLabels(0.15, label => label % 2 == 0)]);
        var odd = AttackEvaluator.Run(classifier, data, [new FgsmOnLabels(0.15, label => label % 2 == 1)]);
        var brokenByEven = even.Robust().Count(r => !r) - (200 - even.CleanPredictions.Where((p, i) => p == data.Labels[i]).Count());
        var brokenByOdd = odd.Robust().Count(r => !r) - (200 - odd.CleanPredictions.Where((p, i) => p == data.Labels[i]).Count());
        Assert.True(brokenByEven > 10 && brokenByOdd > 10, $"each attack breaks its own inputs ({brokenByEven}, {brokenByOdd})");

        var worst = RobustnessRun.WorstCaseAccuracy([even.Robust(), odd.Robust()]);
        Assert.Equal(even.Report.RobustAccuracy - brokenByOdd / 200.0, worst, 10);
        Assert.True(worst < Math.Min(even.Report.RobustAccuracy, odd.Report.RobustAccuracy) - 0.04);
        // The chained evaluator reaches the same per-input worst case.
        var chained = AttackEvaluator.Run(classifier, data, [new FgsmOnLabels(0.15, label => label % 2 == 0), new FgsmOnLabels(0.15, label => label % 2 == 1)]);
        Assert.Equal(worst, chained.Report.RobustAccuracy, 10);
    }

    public static TheoryData<string, Action> BadOptions() => new()
    {
        { "square queries 0", () => _ = new Square(new SquareOptions(0.3, Queries: 0)) },
        { "square queries beyond the cap", () => _ = new Square(new SquareOptions(0.3, Queries: SquareOptions.MaxQueries + 1)) },
        { "square p_init 0", () => _ = new Square(new SquareOptions(0.3, PInit: 0)) },
        { "square p_init 1.5", () => _ = new Square(new SquareOptions(0.3, PInit: 1.5)) },
        { "square eps NaN", () => _ = new Square(new SquareOptions(double.NaN)) },
        { "fab targets 0", () => _ = new FabTargeted(new FabOptions(0.3, TargetClasses: 0)) },
        { "fab eta 0.5", () => _ = new FabTargeted(new FabOptions(0.3, Eta: 0.5)) },
        { "fab beta 0", () => _ = new FabTargeted(new FabOptions(0.3, Beta: 0)) },
        { "fab alpha_max 2", () => _ = new FabTargeted(new FabOptions(0.3, AlphaMax: 2)) },
        { "fab steps 0", () => _ = new FabTargeted(new FabOptions(0.3, Steps: 0)) },
        { "apgd-t targets 0", () => _ = new Apgd(new ApgdOptions(0.3, Loss: ApgdLoss.TargetedDlr, TargetClasses: 0)) },
        { "apgd-t via the catalog, targets -1", () => AttackCatalog.Parse("apgd-t", new AttackSettings { ApgdTargets = -1 }) },
        { "square via the catalog, queries 0", () => AttackCatalog.Parse("square", new AttackSettings { SquareQueries = 0 }) },
        { "mixed norms", () => AttackCatalog.Parse("pgd,pgd-l2", new AttackSettings()) },
        { "mixed norms with cw", () => AttackCatalog.Parse("apgd-ce,cw", new AttackSettings()) },
        { "autoattack plus one of its own", () => AttackCatalog.Parse("autoattack,square", new AttackSettings()) },
        { "autoattack alone through Create", () => AttackCatalog.Create("autoattack", new AttackSettings()) },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Bad_options_are_refused(string name, Action create)
    {
        var error = Assert.ThrowsAny<ArgumentException>(create);
        Assert.False(string.IsNullOrWhiteSpace(error.Message), name);
    }

    [Fact]
    public void Targeted_attacks_refuse_more_targets_than_other_classes()
    {
        var (images, labels, _) = Correct(5);
        using var classifier = new NetworkClassifier(fixture.Network);
        Assert.Throws<ArgumentException>(() => new Apgd(new ApgdOptions(0.3, Loss: ApgdLoss.TargetedDlr, TargetClasses: 10)).Generate(classifier, images, labels));
        Assert.Throws<ArgumentException>(() => new FabTargeted(new FabOptions(0.3, TargetClasses: 10)).Generate(classifier, images, labels));
    }

    [Fact]
    public void The_evaluator_refuses_attacks_of_different_threat_models()
    {
        using var classifier = new NetworkClassifier(fixture.Network);
        var error = Assert.Throws<ArgumentException>(() => AttackEvaluator.Run(classifier, fixture.Test.Take(5),
            [new Fgsm(new FgsmOptions(0.3)), new Pgd(new PgdOptions(2.0, 0.1, 5, Norm: PerturbationNorm.L2))]));
        Assert.Contains("threat model", error.Message);
    }
}
