using SecureMnist.Modeling;
using SecureMnist.Privacy;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Privacy;

public sealed class DpSgdTests
{
    [Fact]
    public void An_empty_sample_gets_noise_of_sigma_c_over_the_expected_batch_size()
    {
        using var scope = NewDisposeScope();
        var model = new DpCnn();
        var parameters = model.parameters().ToList();
        var dp = new DpSgd(new DpSgdOptions(NoiseMultiplier: 1.1, MaxGradientNorm: 2.0, SampleRate: 0.01), datasetSize: 1000, new Generator(3));
        dp.PrivatizeGradients(parameters, perExample: null);
        var all = cat(parameters.Select(p => p.grad!.flatten()).ToList());
        var expected = 1.1 * 2.0 / (0.01 * 1000); // 0.22
        Assert.Equal(0.0, all.mean().item<float>(), 2);
        Assert.InRange(all.std().item<float>(), 0.98 * expected, 1.02 * expected); // 26,010 draws: the std is within 1% with near certainty
        Assert.Equal(1, dp.Accountant.Steps);
    }

    [Fact]
    public void With_little_noise_the_gradient_is_the_clipped_sum_over_the_expected_batch_size()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var model = new DpCnn();
        var parameters = model.parameters().ToList();
        var images = rand(4, 1, 28, 28);
        var labels = tensor(new long[] { 0, 3, 5, 9 });
        var (logits, taps) = model.ForwardRecorded(images);
        nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).backward();
        var perExample = PerSampleGradients.Of(taps);
        var clipped = PerSampleGradients.ClipAndSum(perExample, 0.5).ToDictionary(c => c.Parameter, c => c.Sum);
        var dp = new DpSgd(new DpSgdOptions(1e-9, 0.5, 0.004), datasetSize: 1000, new Generator(1));
        dp.PrivatizeGradients(parameters, perExample);
        foreach (var parameter in parameters)
        {
            var error = (parameter.grad! - (clipped[parameter] / 4.0)).abs().max().item<float>();
            Assert.True(error < 1e-6, $"difference {error}");
        }
        Assert.Throws<ArgumentException>(() => dp.PrivatizeGradients(parameters, perExample.Take(2).ToList()));
    }

    [Fact]
    public void Steps_are_accounted_and_poisson_samples_have_the_rate()
    {
        var dp = new DpSgd(new DpSgdOptions(1.5, 1.0, 0.04), datasetSize: 60_000, new Generator(1));
        var random = new SeededRandom(11);
        var sizes = Enumerable.Range(0, 200).Select(_ => dp.Sample(60_000, random).Length).ToList();
        Assert.InRange(sizes.Average(), 0.99 * 2400, 1.01 * 2400);
        Assert.True(sizes.Distinct().Count() > 20); // the batch size varies, as Poisson sampling's does
        using var scope = NewDisposeScope();
        var parameters = new DpCnn().parameters().ToList();
        for (var i = 0; i < 3; i++) dp.PrivatizeGradients(parameters, null);
        var reference = new RdpAccountant();
        reference.Step(1.5, 0.04, 3);
        Assert.Equal(reference.Epsilon(1e-5).Epsilon, dp.Accountant.Epsilon(1e-5).Epsilon, 12);
    }

    [Theory]
    [InlineData(0, 1, 0.01)]
    [InlineData(1, 0, 0.01)]
    [InlineData(1, 1, 0)]
    [InlineData(1, 1, 1)]
    [InlineData(double.NaN, 1, 0.01)]
    public void Bad_settings_are_refused(double sigma, double clip, double rate) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new DpSgd(new DpSgdOptions(sigma, clip, rate), 100, new Generator(1)));
}
