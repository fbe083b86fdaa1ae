using SecureMnist.Modeling;
using SecureMnist.Privacy;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Privacy;

public sealed class PerSampleGradientTests
{
    private static (DpCnn Model, Tensor Images, Tensor Labels) Batch(int n)
    {
        manual_seed(7);
        var model = new DpCnn();
        var images = rand(n, 1, 28, 28);
        var labels = randint(0, 10, [n], dtype: ScalarType.Int64);
        return (model, images, labels);
    }

    /// <summary>A recorded forward pass over <paramref name="n"/> random images and the backward pass of the summed loss.</summary>
    private static (DpCnn Model, Tensor Images, Tensor Labels, IReadOnlyList<(TorchSharp.Modules.Parameter Parameter, Tensor Gradients)> PerSample) Backpropagated(int n)
    {
        var (model, images, labels) = Batch(n);
        var (logits, taps) = model.ForwardRecorded(images);
        nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).backward();
        return (model, images, labels, PerSampleGradients.Of(taps));
    }

    [Fact]
    public void Per_example_gradients_from_one_pass_equal_batch_of_one_gradients()
    {
        using var scope = NewDisposeScope();
        var (model, images, labels, perSample) = Backpropagated(6);
        Assert.Equal(model.parameters().Count(), perSample.Count); // every parameter is covered

        for (var i = 0; i < 6; i++)
        {
            model.zero_grad();
            nn.functional.cross_entropy(model.call(images.narrow(0, i, 1)), labels.narrow(0, i, 1), reduction: nn.Reduction.Sum).backward();
            foreach (var (parameter, gradients) in perSample)
            {
                var expected = parameter.grad!;
                var actual = gradients[i];
                Assert.Equal(expected.shape, actual.shape);
                var error = (actual - expected).abs().max().item<float>();
                Assert.True(error < 1e-5, $"example {i}: max difference {error} for a parameter of shape [{string.Join(",", expected.shape)}]");
            }
        }
    }

    [Fact]
    public void Clipping_leaves_no_example_above_the_norm_and_keeps_small_ones_whole()
    {
        using var scope = NewDisposeScope();
        var (_, _, _, perSample) = Backpropagated(8);
        var norms = PerSampleGradients.Norms(perSample).data<float>().ToArray();
        var maxNorm = norms.Order().ElementAt(4); // half the examples above it, half at or below
        Assert.Contains(norms, n => n > maxNorm * 1.01);

        // Clip one example at a time: the sum over a batch of one is that example's clipped gradient.
        for (var i = 0; i < 8; i++)
        {
            var one = perSample.Select(g => (g.Parameter, g.Gradients.narrow(0, i, 1))).ToList();
            var clipped = PerSampleGradients.ClipAndSum(one, maxNorm);
            var norm = Math.Sqrt(clipped.Sum(c => c.Sum.square().sum().item<float>()));
            Assert.True(norm <= maxNorm * (1 + 1e-5), $"example {i}: clipped norm {norm} above {maxNorm}");
            if (norms[i] <= maxNorm) Assert.Equal(norms[i], norm, 3); // not scaled
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => PerSampleGradients.ClipAndSum(perSample, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => PerSampleGradients.ClipAndSum(perSample, double.NaN));
    }

    [Fact]
    public void Reading_per_example_gradients_before_backward_is_refused()
    {
        using var scope = NewDisposeScope();
        var (model, images, _) = Batch(2);
        var (_, taps) = model.ForwardRecorded(images);
        Assert.Throws<InvalidOperationException>(() => PerSampleGradients.Of(taps));
    }
}
