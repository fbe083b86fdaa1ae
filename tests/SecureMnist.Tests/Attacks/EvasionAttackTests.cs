using SecureMnist.Attacks.Evasion;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

public sealed class EvasionAttackTests(TrainedLinearModel fixture) : IClassFixture<TrainedLinearModel>
{
    private (Tensor Images, Tensor Labels) Batch(int count = 100)
    {
        var data = fixture.Test.Take(count);
        return (data.ImagesTensor(), data.LabelsTensor());
    }

    private static double Accuracy(IClassifier model, Tensor images, Tensor labels)
    {
        using var noGrad = no_grad();
        using var logits = model.Logits(images);
        return logits.argmax(1).eq(labels).to(ScalarType.Float32).mean().item<float>();
    }

    [Fact]
    public void Fgsm_equals_the_analytic_perturbation_of_a_linear_softmax_classifier()
    {
        var (images, labels) = Batch(20);
        using var classifier = new NetworkClassifier(fixture.Network);
        using var adversarial = new Fgsm(new FgsmOptions(0.1)).Generate(classifier, images, labels);

        // For z = Wx + b, d CE / dx = W^T (softmax(z) - onehot(y)): computed here by hand, without autograd.
        var parameters = fixture.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var w = parameters["fc.weight"].data<float>().ToArray();
        var b = parameters["fc.bias"].data<float>().ToArray();
        var x = images.data<float>().ToArray();
        var y = labels.data<long>().ToArray();
        var actual = adversarial.data<float>().ToArray();
        for (var n = 0; n < 20; n++)
        {
            var z = new double[10];
            for (var k = 0; k < 10; k++)
            {
                z[k] = b[k];
                for (var p = 0; p < 784; p++) z[k] += w[k * 784 + p] * x[n * 784 + p];
            }
            var max = z.Max();
            var exp = z.Select(v => Math.Exp(v - max)).ToArray();
            var sum = exp.Sum();
            for (var p = 0; p < 784; p++)
            {
                double gradient = 0;
                for (var k = 0; k < 10; k++) gradient += w[k * 784 + p] * (exp[k] / sum - (k == y[n] ? 1 : 0));
                if (Math.Abs(gradient) < 1e-6) continue; // sign of a float-rounding-sized gradient is not well defined
                var expected = Math.Clamp(x[n * 784 + p] + 0.1 * Math.Sign(gradient), 0, 1);
                Assert.Equal(expected, actual[n * 784 + p], 5);
            }
        }
    }

    [Fact]
    public void Pgd_with_zero_steps_and_no_random_start_returns_the_input()
    {
        var (images, labels) = Batch();
        using var classifier = new NetworkClassifier(fixture.Network);
        using var adversarial = new Pgd(new PgdOptions(0.3, 0.01, Steps: 0, RandomStart: false)).Generate(classifier, images, labels);
        Assert.True(adversarial.eq(images).all().item<bool>());
    }

    [Theory]
    [InlineData("fgsm")]
    [InlineData("pgd")]
    public void Targeted_attacks_reach_their_targets(string name)
    {
        var (images, labels) = Batch();
        var targets = (labels + 1).remainder(10);
        using var classifier = new NetworkClassifier(fixture.Network);
        IEvasionAttack attack = name == "fgsm"
            ? new Fgsm(new FgsmOptions(0.3, Targeted: true))
            : new Pgd(new PgdOptions(0.3, 0.02, 40, Targeted: true));
        using var adversarial = attack.Generate(classifier, images, targets);
        var reached = Accuracy(classifier, adversarial, targets);
        Assert.True(reached >= (name == "fgsm" ? 0.5 : 0.95), $"{name} reached the target on {reached:P0}");
        AttackEvaluator.CheckThreatModel(attack, images, adversarial);
    }

    [Fact]
    public void Targeted_carlini_wagner_reaches_its_targets()
    {
        var (images, labels) = Batch(30);
        var targets = (labels + 3).remainder(10);
        using var classifier = new NetworkClassifier(fixture.Network);
        using var adversarial = new CarliniWagnerL2(new CarliniWagnerOptions(Targeted: true, MaxIterations: 100, BinarySearchSteps: 4)).Generate(classifier, images, targets);
        Assert.True(Accuracy(classifier, adversarial, targets) >= 0.95);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.2)]
    [InlineData(0.3)]
    public void Pgd_is_never_weaker_than_fgsm(double eps)
    {
        var (images, labels) = Batch(300);
        using var classifier = new NetworkClassifier(fixture.Network);
        using var fgsm = new Fgsm(new FgsmOptions(eps)).Generate(classifier, images, labels);
        using var pgd = new Pgd(new PgdOptions(eps, eps / 10, 20)).Generate(classifier, images, labels);
        Assert.True(Accuracy(classifier, pgd, labels) <= Accuracy(classifier, fgsm, labels));
    }

    [Fact]
    public void Every_attack_stays_inside_its_threat_model_and_in_range()
    {
        var (images, labels) = Batch(50);
        using var classifier = new NetworkClassifier(fixture.Network);
        foreach (var name in AttackCatalog.Descriptions.Keys.Where(n => n != AttackCatalog.AutoAttack))
        {
            var attack = AttackCatalog.Create(name, new AttackSettings
            {
                Steps = 10, ApgdSteps = 10, FabSteps = 10, SquareQueries = 50, ApgdTargets = 2, FabTargets = 2,
                CarliniWagner = new CarliniWagnerOptions(MaxIterations: 10, BinarySearchSteps: 2),
            });
            using var adversarial = attack.Generate(classifier, images, labels);
            AttackEvaluator.CheckThreatModel(attack, images, adversarial);
        }
    }

    [Fact]
    public void The_threat_model_check_catches_an_attack_that_cheats()
    {
        var (images, labels) = Batch(10);
        var attack = new Fgsm(new FgsmOptions(0.1));
        using var tooFar = (images + 0.2).clamp(0, 1);
        Assert.Throws<AttackInvariantException>(() => AttackEvaluator.CheckThreatModel(attack, images, tooFar));
        using var outOfRange = images + 0.05;
        Assert.Throws<AttackInvariantException>(() => AttackEvaluator.CheckThreatModel(attack, images, outOfRange));
    }

    [Fact]
    public void Apgd_and_pgd_break_the_linear_model_at_eps_0_3()
    {
        using var classifier = new NetworkClassifier(fixture.Network);
        var run = AttackEvaluator.Run(classifier, fixture.Test, AttackCatalog.Parse("fgsm,pgd,apgd-ce,apgd-dlr", new AttackSettings { Steps = 20, ApgdSteps = 20 }));
        Assert.True(run.Report.CleanAccuracy > 0.8);
        Assert.True(run.Report.RobustAccuracy < 0.02, $"robust accuracy {run.Report.RobustAccuracy:P1}");
        Assert.Equal(run.Report.Stages.Sum(s => s.Broken), run.BrokenBy.Count(b => b is not null));
        Assert.Equal(run.Report.Perturbation.Count, run.BrokenBy.Count(b => b is not null));
        Assert.True(run.Report.Perturbation.MeanLInf <= 0.3 + AttackEvaluator.NormTolerance);
    }

    [Fact]
    public void Carlini_wagner_finds_small_l2_perturbations()
    {
        using var classifier = new NetworkClassifier(fixture.Network);
        var run = AttackEvaluator.Run(classifier, fixture.Test.Take(100), [new CarliniWagnerL2(new CarliniWagnerOptions(MaxIterations: 100, BinarySearchSteps: 5))]);
        Assert.True(run.Report.AttackSuccessRate >= 0.99, $"success {run.Report.AttackSuccessRate:P1}");
        Assert.True(run.Report.Perturbation.MedianL2 < 2.0, $"median L2 {run.Report.Perturbation.MedianL2}");
    }

    [Fact]
    public void Apgd_checkpoints_follow_the_paper()
    {
        Assert.Equal([22, 41, 57, 70, 80, 87, 93, 99], Apgd.Checkpoints(100));
    }

    [Fact]
    public void Dlr_loss_matches_its_definition()
    {
        using var logits = tensor(new float[] { 5, 1, 3, 0, 4, 2 }, [1, 6]);
        using var label2 = tensor(new long[] { 2 });
        using var label0 = tensor(new long[] { 0 });
        // Sorted: 5, 4, 3. Label 2 (z=3): -(3 - 5) / (5 - 3) = 1. Label 0 (z=5, top): -(5 - 4) / (5 - 3) = -0.5.
        Assert.Equal(1f, Apgd.DlrLoss(logits, label2).item<float>(), 5);
        Assert.Equal(-0.5f, Apgd.DlrLoss(logits, label0).item<float>(), 5);
    }

    public static TheoryData<string, Action> BadParameters() => new()
    {
        { "fgsm eps < 0", () => _ = new Fgsm(new FgsmOptions(-0.1)) },
        { "fgsm eps NaN", () => _ = new Fgsm(new FgsmOptions(double.NaN)) },
        { "pgd step 0", () => _ = new Pgd(new PgdOptions(0.3, 0, 10)) },
        { "pgd steps < 0", () => _ = new Pgd(new PgdOptions(0.3, 0.01, -1)) },
        { "pgd restarts 0", () => _ = new Pgd(new PgdOptions(0.3, 0.01, 10, Restarts: 0)) },
        { "pgd restarts without random start", () => _ = new Pgd(new PgdOptions(0.3, 0.01, 10, Restarts: 3, RandomStart: false)) },
        { "cw kappa < 0", () => _ = new CarliniWagnerL2(new CarliniWagnerOptions(Confidence: -1)) },
        { "cw lr 0", () => _ = new CarliniWagnerL2(new CarliniWagnerOptions(LearningRate: 0)) },
        { "cw search 0", () => _ = new CarliniWagnerL2(new CarliniWagnerOptions(BinarySearchSteps: 0)) },
        { "cw c 0", () => _ = new CarliniWagnerL2(new CarliniWagnerOptions(InitialConst: 0)) },
        { "apgd steps 0", () => _ = new Apgd(new ApgdOptions(0.3, Steps: 0)) },
        { "apgd rho 2", () => _ = new Apgd(new ApgdOptions(0.3, Rho: 2)) },
        { "unknown attack", () => AttackCatalog.Parse("fgsm,deepfool", new AttackSettings()) },
        { "duplicate attack", () => AttackCatalog.Parse("pgd,pgd", new AttackSettings()) },
    };

    [Theory]
    [MemberData(nameof(BadParameters))]
    public void Bad_parameters_are_refused(string name, Action create)
    {
        var error = Assert.ThrowsAny<ArgumentException>(create);
        Assert.False(string.IsNullOrWhiteSpace(error.Message), name);
    }
}
