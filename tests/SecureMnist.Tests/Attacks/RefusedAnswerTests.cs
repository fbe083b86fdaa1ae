using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

/// <summary>NaN answers: a refusal from a remote service keeps an input robust; from a local network they are wrong answers, never robustness.</summary>
public sealed class RefusedAnswerTests
{
    /// <summary>Answers class 3 for the unperturbed grey image and NaN for anything else, as a network that breaks off its inputs would.</summary>
    private sealed class NanOffTheData : IClassifier
    {
        public int ClassCount => 10;

        public Tensor Logits(Tensor images)
        {
            using var scope = NewDisposeScope();
            var clean = images.flatten(1).sub(128f / 255).abs().amax(1).lt(1e-6).unsqueeze(1);
            var oneHot = zeros(images.shape[0], 10);
            oneHot[TensorIndex.Colon, 3] = tensor(10f);
            return where(clean, oneHot, full_like(oneHot, float.NaN)).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Moves every pixel up by 0.01: within any L-inf budget of 0.01.</summary>
    private sealed class Nudge : IEvasionAttack
    {
        public string Name => "nudge";
        public PerturbationNorm Norm => PerturbationNorm.LInf;
        public double Epsilon => 0.01;
        public bool Targeted => false;
        public Tensor Generate(IClassifier model, Tensor images, Tensor labels) => (images + 0.01).clamp(0, 1);
    }

    [Fact]
    public void A_local_network_that_answers_nan_is_broken_not_robust()
    {
        var data = new LabeledImages([.. Enumerable.Repeat((byte)128, 4 * 784)], [3, 3, 3, 3]);
        var run = AttackEvaluator.Run(new NanOffTheData(), data, [new Nudge()]);
        Assert.Equal(1.0, run.Report.CleanAccuracy);
        Assert.Equal(0.0, run.Report.RobustAccuracy); // a NaN row predicts no class
        using var logits = tensor(new[] { float.NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, [1, 10]);
        using var labels = tensor(new long[] { 3 });
        using var local = RefusedAnswers.Predictions(new NanOffTheData(), logits, labels);
        Assert.Equal(-1, local.item<long>());
    }
}
