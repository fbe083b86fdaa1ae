using SecureMnist.Attacks.Evasion;
using SecureMnist.Audit;
using SecureMnist.Defenses;
using SecureMnist.Security;
using SecureMnist.Serving;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Service;

[Collection(ServedModelCollection.Name)]
public sealed class DecisionPolicyTests(ServedModel model)
{
    private async Task<(InferenceEngine Engine, VerifiedModel Verified)> Engine(DecisionPolicy policy)
    {
        var verified = ModelPackage.Load(model.PackageDirectory, TrustedPublicKey.FromFile(model.PublicKeyPath));
        var guard = InputGuard.Calibrate(verified.Network, model.Mnist.Train, 1000, new SqueezingOptions());
        await Task.CompletedTask;
        return (new InferenceEngine(verified, guard.Squeezing, guard.Statistics, policy, new BatchingOptions(QueueCapacity: 1024)), verified);
    }

    private static float[][] Rows(Tensor images, int count)
    {
        var values = images.reshape(count, -1).data<float>().ToArray();
        return Enumerable.Range(0, count).Select(i => values.AsSpan(i * 784, 784).ToArray()).ToArray();
    }

    private static async Task<Prediction[]> PredictAll(InferenceEngine engine, IEnumerable<float[]> inputs) =>
        await Task.WhenAll(inputs.Select(x => engine.PredictAsync(x, explain: false)));

    [Fact]
    public async Task Without_a_batch_delay_requests_that_arrive_while_the_model_runs_share_the_next_forward_pass()
    {
        Assert.Equal(0, new BatchingOptions().MaxDelayMilliseconds);
        var (engine, _) = await Engine(new DecisionPolicy());
        var answers = await PredictAll(engine, Enumerable.Range(0, 128).Select(model.TestPixels));
        await engine.DisposeAsync();
        Assert.Equal(128, answers.Length);
        Assert.Equal(128, engine.BatchedInputs);
        // 128 requests queued within microseconds: the first pass takes what is there, the rest gather while it runs.
        Assert.True(engine.Batches <= 8, $"{engine.Batches} forward passes for 128 requests");
    }

    [Fact]
    public async Task Low_confidence_answers_are_withheld()
    {
        // Blends of two different digits are ambiguous; under a 0.9 threshold the unsure ones must abstain.
        var blends = Enumerable.Range(0, 60).Select(i => model.TestPixels(i).Zip(model.TestPixels(i + 100), (a, b) => Math.Max(a, b) * 0.9f).ToArray()).ToArray();
        var (open, verified) = await Engine(new DecisionPolicy(AbstainBelow: 0));
        var answered = await PredictAll(open, blends);
        await open.DisposeAsync();
        var (gated, _) = await Engine(new DecisionPolicy(AbstainBelow: 0.9));
        var decided = await PredictAll(gated, blends);
        await gated.DisposeAsync();
        verified.Dispose();
        var unsure = Enumerable.Range(0, blends.Length).Where(i => answered[i].Outcome == AuditOutcome.Accepted && answered[i].Confidence < 0.9).ToArray();
        Assert.NotEmpty(unsure);
        Assert.All(unsure, i =>
        {
            Assert.Equal(AuditOutcome.Abstained, decided[i].Outcome);
            Assert.Null(decided[i].Label);
        });
        Assert.All(decided.Where(d => d.Outcome == AuditOutcome.Accepted), d => Assert.True(d.Confidence >= 0.9));
    }

    [Fact]
    public async Task Feature_squeezing_flags_adversarial_examples_far_more_often_than_clean_digits_and_can_reject_them()
    {
        var test = model.Mnist.Test.Take(300);
        var verifiedForAttack = ModelPackage.Load(model.PackageDirectory, TrustedPublicKey.FromFile(model.PublicKeyPath));
        float[][] adversarial, interiorAdversarial;
        using (var scope = NewDisposeScope())
        using (var classifier = new NetworkClassifier(verifiedForAttack.Network))
        {
            var images = test.ImagesTensor();
            var crafted = new Fgsm(new FgsmOptions(0.3)).Generate(classifier, images, test.LabelsTensor());
            // Also a variant that leaves the 3-pixel border clean, which passes the not-a-digit statistics and so reaches the detector.
            var interior = zeros(1, 1, 28, 28);
            interior.narrow(2, 3, 22).narrow(3, 3, 22).fill_(1);
            var masked = images + (interior * (new Fgsm(new FgsmOptions(0.2)).Generate(classifier, images, test.LabelsTensor()) - images));
            adversarial = Rows(crafted, test.Count);
            interiorAdversarial = Rows(masked, test.Count);
        }
        verifiedForAttack.Dispose();
        var clean = Enumerable.Range(0, test.Count).Select(model.TestPixels).ToArray();

        var (flagging, verified) = await Engine(new DecisionPolicy(AbstainBelow: 0));
        var onClean = await PredictAll(flagging, clean);
        // The detector alone (the not-a-digit statistics would refuse many of these first).
        double[] scores;
        using (var probe = new NetworkClassifier(verified.Network))
            scores = flagging.Squeezing.Scores(probe, tensor(adversarial.SelectMany(x => x).ToArray()).reshape(-1, 1, 28, 28));
        var onAttack = await PredictAll(flagging, interiorAdversarial);
        await flagging.DisposeAsync();
        var cleanFlagged = (double)onClean.Count(x => x.Outcome == AuditOutcome.Flagged) / onClean.Length;
        var attackFlagged = (double)scores.Count(s => s > flagging.Squeezing.Threshold) / scores.Length;
        Assert.True(cleanFlagged <= 0.12, $"clean flagged {cleanFlagged:P1}");
        Assert.True(attackFlagged >= 0.5, $"FGSM flagged {attackFlagged:P1}");
        Assert.Contains(onAttack, p => p.Outcome == AuditOutcome.Flagged);

        var (rejecting, _) = await Engine(new DecisionPolicy(AbstainBelow: 0, OnAdversarial: AdversarialAction.Reject));
        var rejected = await PredictAll(rejecting, interiorAdversarial);
        await rejecting.DisposeAsync();
        verified.Dispose();
        // Same inputs, same calibration: what the flagging policy marked (clear of the threshold), the rejecting one refuses.
        var clearlyFlagged = Enumerable.Range(0, onAttack.Length)
            .Where(i => onAttack[i].Outcome == AuditOutcome.Flagged && onAttack[i].SqueezeScore > 1.02 * rejecting.Squeezing.Threshold).ToArray();
        Assert.NotEmpty(clearlyFlagged);
        Assert.All(clearlyFlagged, i =>
        {
            Assert.Equal(AuditOutcome.Rejected, rejected[i].Outcome);
            Assert.Null(rejected[i].Label);
            Assert.Contains("feature squeezing", rejected[i].Reason);
        });
    }
}
