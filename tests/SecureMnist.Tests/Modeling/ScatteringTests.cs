using SecureMnist.Modeling;
using SecureMnist.Privacy;
using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Modeling;

/// <summary>The scattering transform's defining properties, and ScatterLinear as a DP-SGD network.</summary>
public sealed class ScatteringTests
{
    [Fact]
    public void A_constant_image_scatters_to_its_value_at_order_zero_and_to_nothing_above()
    {
        using var scope = NewDisposeScope();
        using var scattering = new Scattering2D();
        Assert.Equal((81, 7, 7), (scattering.Channels, scattering.OutputHeight, scattering.OutputWidth)); // 1 + 2 x 8 + 8^2 x 2 x 1 / 2
        var coefficients = scattering.Transform(full(2, 1, 28, 28, 0.6f));
        Assert.Equal([2L, 81, 7, 7], coefficients.shape);
        // The low-pass filter sums to one, and every wavelet to zero (Morlet's correction), so a flat image has no energy past order 0.
        Assert.True((coefficients[.., 0] - 0.6f).abs().max().item<float>() < 1e-5);
        Assert.True(coefficients[.., 1..].abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void A_quarter_turn_of_a_wavelet_is_the_wavelet_a_quarter_turn_away_and_each_has_zero_mean()
    {
        const int size = 36;
        for (var theta = 0; theta < 8; theta++)
        {
            var angle = (3 - theta) * Math.PI / 8;
            var wavelet = Scattering2D.Morlet(size, size, 0.8, angle, 0.75 * Math.PI, 0.5);
            var turned = Scattering2D.Morlet(size, size, 0.8, angle - Math.PI / 2, 0.75 * Math.PI, 0.5);
            var sum = System.Numerics.Complex.Zero;
            foreach (var v in wavelet) sum += v;
            Assert.True(sum.Magnitude < 1e-9, $"angle {theta}: sum {sum}");
            // g(theta - pi/2)(v) = g(theta)(R(pi/2) v): the value at (r, c) is the original's at (-c, r), on the periodic grid.
            for (var r = 0; r < size; r++)
                for (var c = 0; c < size; c++)
                    Assert.True((turned[r, c] - wavelet[(size - c) % size, r]).Magnitude < 1e-9, $"angle {theta} at ({r}, {c})");
        }
    }

    [Fact]
    public void Stripes_excite_the_wavelet_across_them_and_the_turned_stripes_the_one_a_quarter_turn_away()
    {
        using var scope = NewDisposeScope();
        using var scattering = new Scattering2D();
        // Stripes of period 4 pixels: frequency pi/2, near the finest wavelets' 3 pi / 4.
        var rows = arange(28).remainder(4).lt(2).to(ScalarType.Float32);
        var horizontal = rows.unsqueeze(1).expand(28, 28).reshape(1, 1, 28, 28);
        var vertical = horizontal.transpose(2, 3);
        long Strongest(Tensor image) => scattering.Transform(image)[0, 1..9].pow(2).sum([1, 2]).argmax().item<long>();
        var (across, turned) = (Strongest(horizontal), Strongest(vertical));
        Assert.Equal(4, (turned - across + 8) % 8);
        // Positive homogeneity: every path is linear filtering and moduli, so scaling the image scales every coefficient.
        var image = rand(3, 1, 28, 28, generator: new Generator(5));
        Assert.True((scattering.Transform(image * 2) - 2 * scattering.Transform(image)).abs().max().item<float>() < 1e-4);
        Assert.Throws<ArgumentException>(() => scattering.Transform(zeros(1, 1, 32, 32)));
    }

    [Fact]
    public void ScatterLinear_takes_per_example_gradients_and_passes_gradients_to_its_input()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var model = new ScatterLinear();
        var images = rand(4, 1, 28, 28);
        var labels = tensor(new long[] { 1, 7, 3, 0 });
        var (logits, taps) = model.ForwardRecorded(images);
        nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).backward();
        var perSample = PerSampleGradients.Of(taps);
        Assert.Equal(model.parameters().Count(), perSample.Count);
        for (var i = 0; i < 4; i++)
        {
            model.zero_grad();
            nn.functional.cross_entropy(model.call(images.narrow(0, i, 1)), labels.narrow(0, i, 1), reduction: nn.Reduction.Sum).backward();
            foreach (var (parameter, gradients) in perSample)
                Assert.True((gradients[i] - parameter.grad!).abs().max().item<float>() < 1e-5, $"example {i}");
        }
        // The fixed stage is differentiable: a white-box attack sees the whole network (no masked gradient).
        var input = images.clone().requires_grad_(true);
        nn.functional.cross_entropy(model.call(input), labels).backward();
        Assert.True(input.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void A_private_step_on_precomputed_features_is_the_step_on_the_images()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var first = new ScatterLinear();
        using var second = new ScatterLinear();
        second.load_state_dict(first.state_dict());
        var images = rand(200, 1, 28, 28, generator: new Generator(9));
        var labels = randint(0, 10, [200], dtype: ScalarType.Int64, generator: new Generator(10));
        var features = FixedFeatures.Of(first, images, chunk: 64);
        Assert.Equal([200L, 81 * 7 * 7], features.shape);
        var options = new PrivacyOptions { NoiseMultiplier = 1.0, Delta = 1e-3 };
        Tensor StepOnce(ScatterLinear model, Tensor inputs, bool featureInputs)
        {
            var plan = PrivateTraining.Plan(options, 200, 50, 1);
            var parameters = model.parameters().ToList();
            using var optimizer = optim.SGD(parameters, 0.5);
            plan.Mechanism.SeedNoise(4);
            plan.Step(model, optimizer, parameters, inputs, labels, new SeededRandom(8), featureInputs);
            return model.parameters().First().detach().clone();
        }
        var fromImages = StepOnce(first, images, featureInputs: false);
        var fromFeatures = StepOnce(second, features, featureInputs: true);
        Assert.True((fromImages - fromFeatures).abs().max().item<float>() < 1e-5);
        Assert.Throws<ArgumentException>(() => PrivateTraining.Plan(options, 200, 50, 1).Step(new DpCnn(), optim.SGD(new DpCnn().parameters(), 0.1), [], images, labels, new SeededRandom(1), featureInputs: true));
    }
}

/// <summary>The DP-SGD recipes train --dp and the assessment share.</summary>
public sealed class PrivateRecipeTests
{
    [Fact]
    public void The_scatternet_recipe_keeps_its_sampling_rate_on_a_subset_and_the_cnn_recipe_its_batch()
    {
        Assert.Equal(Architectures.ScatterLinear, PrivateRecipes.Architecture);
        Assert.Equal((8.0, 4096), PrivateRecipes.For(Architectures.ScatterLinear, 60_000));
        Assert.Equal((8.0, 683), PrivateRecipes.For(Architectures.ScatterLinear, 10_000)); // 4,096 / 60,000 of 10,000
        Assert.Equal((8.0, 4096), PrivateRecipes.For(Architectures.ScatterLinear, 120_000)); // never above the recipe's batch
        Assert.Equal((0.5, 512), PrivateRecipes.For(Architectures.DpCnn, 10_000));
        Assert.Throws<ArgumentOutOfRangeException>(() => PrivateRecipes.For(Architectures.ScatterLinear, 1));
    }
}
