using SecureMnist.Attacks.Evasion;
using SecureMnist.Modeling;
using SecureMnist.Serving;
using SecureMnist.Tests.Attacks;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Service;

public sealed class PrecisionEquivalenceTests(TrainedLinearModel fixture) : IClassFixture<TrainedLinearModel>
{
    private static nn.Module<Tensor, Tensor> Bf16Copy(nn.Module<Tensor, Tensor> network)
    {
        var copy = Architectures.Create(Architectures.LinearSoftmax);
        copy.load_state_dict(network.state_dict());
        copy.to(ScalarType.BFloat16);
        return copy;
    }

    [Fact]
    public void Both_precisions_decide_the_same_inputs_and_the_verdict_follows_the_gaps()
    {
        using var bf16 = Bf16Copy(fixture.Network);
        var test = fixture.Test.Take(200);
        var report = PrecisionEquivalence.Run(fixture.Network, bf16, TestPaths.Mnist().Train, test, fashion: null, new PrecisionEquivalenceOptions(CalibrationImages: 200, Tolerance: 0.01));

        Assert.Equal(["clean MNIST test", "FGSM eps 0.3 (from fp32)", "PGD-40 eps 0.3 (from fp32)"], report.Rows.Select(r => r.Inputs));
        Assert.All(report.Rows, r => Assert.Equal(200, r.Count));
        using var classifier = new NetworkClassifier(fixture.Network);
        using var images = test.ImagesTensor();
        var expected = (double)classifier.Predict(images).Where((p, i) => p == test.Labels[i]).Count() / test.Count;
        Assert.Equal(expected, report.Rows[0].AccuracyFp32!.Value, 6);
        // bfloat16 keeps 8 bits of mantissa: a linear model's labels barely move.
        Assert.All(report.Rows, r => Assert.True(r.PredictionsAgree >= 0.95, $"{r.Inputs}: {r.PredictionsAgree:P1} same labels"));
        Assert.Equal(report.Rows.All(r => r.LargestGap <= 0.01), report.Equivalent);
        Assert.True(report.ImagesPerSecondFp32 > 0 && report.ImagesPerSecondBf16 > 0);
    }

    [Fact]
    public void A_gap_above_the_tolerance_in_any_rate_fails_the_verdict()
    {
        PrecisionComparison Row(double accuracyBf16 = 0.98, double squeezedBf16 = 0.05, double heldBackBf16 = 0.06) =>
            new("clean", 1000, 0.98, accuracyBf16, 0.05, squeezedBf16, 0.06, heldBackBf16, 1, 1, 0.01);
        PrecisionEquivalenceReport Report(PrecisionComparison row) => new(0.3, 0.3, 0.001, [row], 1, 1, 1);
        Assert.True(Report(Row()).Equivalent);
        Assert.True(Report(Row(accuracyBf16: 0.981)).Equivalent);
        Assert.False(Report(Row(accuracyBf16: 0.9785)).Equivalent);
        Assert.False(Report(Row(squeezedBf16: 0.052)).Equivalent);
        Assert.False(Report(Row(heldBackBf16: 0.058)).Equivalent);
    }

    [Fact]
    public void Auto_is_bf16_only_where_the_cpu_computes_bfloat16_natively_and_an_explicit_choice_stands()
    {
        Assert.Equal(InferencePrecision.Bf16, InferencePrecision.Auto.Resolve(["avx2", "avx512f", "avx512_bf16"]));
        Assert.Equal(InferencePrecision.Bf16, InferencePrecision.Auto.Resolve(["avx2", "amx_bf16", "amx_tile"]));
        Assert.Equal(InferencePrecision.Fp32, InferencePrecision.Auto.Resolve(["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"]));
        Assert.Equal(InferencePrecision.Fp32, InferencePrecision.Auto.Resolve([]));
        Assert.Equal(InferencePrecision.Fp32, InferencePrecision.Fp32.Resolve(["avx512_bf16"]));
        Assert.Equal(InferencePrecision.Bf16, InferencePrecision.Bf16.Resolve([]));
        Assert.Equal(InferencePrecision.Auto, new SecureMnist.Server.ServiceOptions { ModelDirectory = "m", PublicKeyPath = "p", ApiKeysPath = "k", AuditDirectory = "a", AuditKeyPath = "a.key", DataRoot = "d" }.Precision);
    }

    [Fact]
    public void Networks_in_the_wrong_type_and_bad_options_are_refused()
    {
        var train = TestPaths.Mnist().Train;
        var error = Assert.Throws<ArgumentException>(() => PrecisionEquivalence.Run(fixture.Network, fixture.Network, train, fixture.Test, null, new PrecisionEquivalenceOptions()));
        Assert.Contains("BFloat16", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PrecisionEquivalenceOptions(Tolerance: 1.5).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PrecisionEquivalenceOptions(Epsilon: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PrecisionEquivalenceOptions(CalibrationImages: 0).Validate());
    }
}
