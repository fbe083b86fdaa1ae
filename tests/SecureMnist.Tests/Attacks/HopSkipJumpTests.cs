using SecureMnist.Attacks.Evasion;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Attacks;

/// <summary>
/// HopSkipJump against the linear softmax classifier, whose smallest L2 flip inside the [0, 1] box is known: to make class k overtake
/// y, the closest point of the half-space a.(x + delta) &lt;= -(b_y - b_k), a = w_y - w_k, within the box is delta_i = clip(-lambda a_i,
/// -x_i, 1 - x_i) for the lambda (found by bisection) at which the constraint is just met; the minimum over k is the answer.
/// </summary>
public sealed class HopSkipJumpTests(TrainedLinearModel fixture) : IClassFixture<TrainedLinearModel>
{
    private double[] MinimalL2(float[] images, byte[] labels)
    {
        var parameters = fixture.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var w = parameters["fc.weight"].data<float>().ToArray();
        var b = parameters["fc.bias"].data<float>().ToArray();
        var result = new double[labels.Length];
        for (var n = 0; n < labels.Length; n++)
        {
            var x = images.AsSpan(n * 784, 784).ToArray();
            int y = labels[n];
            var best = double.PositiveInfinity;
            for (var k = 0; k < 10; k++)
            {
                if (k == y) continue;
                var a = Enumerable.Range(0, 784).Select(i => (double)w[y * 784 + i] - w[k * 784 + i]).ToArray();
                var offset = (double)b[y] - b[k];
                // Margin after the move for a given lambda: a.(x + delta(lambda)) + offset, decreasing in lambda.
                double Margin(double lambda, out double norm)
                {
                    double margin = offset, squares = 0;
                    for (var i = 0; i < 784; i++)
                    {
                        var delta = Math.Clamp(-lambda * a[i], -x[i], 1 - x[i]);
                        margin += a[i] * (x[i] + delta);
                        squares += delta * delta;
                    }
                    norm = Math.Sqrt(squares);
                    return margin;
                }
                if (Margin(1e9, out _) > 0) continue; // the box does not allow this class
                double low = 0, high = 1;
                while (Margin(high, out _) > 0) high *= 2;
                for (var i = 0; i < 100; i++)
                {
                    var middle = (low + high) / 2;
                    if (Margin(middle, out _) > 0) low = middle; else high = middle;
                }
                Margin(high, out var distance);
                best = Math.Min(best, distance);
            }
            result[n] = best;
        }
        return result;
    }

    [Fact]
    public void It_comes_close_to_the_minimal_l2_flip_from_labels_alone_and_never_below_it()
    {
        var data = fixture.Test.Take(12);
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        using var classifier = new NetworkClassifier(fixture.Network);
        var blackBox = new NoGradientClassifier(classifier);
        var predicted = classifier.Predict(images);
        var analytic = MinimalL2(images.data<float>().ToArray(), data.Labels);
        // 8,000 queries per input: at 4,000 the median ratio passed under 1.5 on an AVX2 host and measured 1.52 on an AVX-512 one (the
        // fixture's float kernels differ), on the bound; at 8,000 it measured 1.23 on the AVX-512 host, well inside it.
        var attack = new HopSkipJump(new HopSkipJumpOptions(Queries: 8000));
        using var adversarial = attack.Generate(blackBox, images, labels);
        using var noGrad = no_grad();
        var wrong = classifier.Logits(adversarial).argmax(1).ne(labels).data<bool>().ToArray();
        var distances = (adversarial - images).flatten(1).norm(1).data<float>().ToArray();
        var ratios = new List<double>();
        for (var i = 0; i < data.Count; i++)
        {
            if (predicted[i] != data.Labels[i]) continue;
            Assert.True(wrong[i], $"input {i}: no adversarial example within 8,000 queries (analytic L2 {analytic[i]:F3})");
            Assert.True(distances[i] >= analytic[i] * (1 - 1e-3), $"input {i}: L2 {distances[i]:F4} is below the analytic minimum {analytic[i]:F4}");
            ratios.Add(distances[i] / analytic[i]);
        }
        Assert.True(ratios.Count >= 8);
        var median = ratios.Order().ElementAt(ratios.Count / 2);
        Assert.True(median <= 1.5, $"median L2 over the analytic minimum: {median:F2}");
        Assert.True(attack.LastQueries <= 12L * 8000, $"{attack.LastQueries} queries for 12 inputs at 8,000 each");
        Assert.Contains("L2", AttackCatalog.Descriptions["hopskipjump"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(10, 100, 10_000, 1.0)]
    [InlineData(2_000_000, 100, 10_000, 1.0)]
    [InlineData(1000, 1, 10_000, 1.0)]
    [InlineData(1000, 200, 100, 1.0)]
    [InlineData(1000, 100, 10_000, 0.0)]
    public void Bad_settings_are_refused(int queries, int initial, int max, double gamma) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HopSkipJump(new HopSkipJumpOptions(queries, initial, max, gamma)));

    [Fact]
    public void It_shares_no_threat_model_with_linf_attacks()
    {
        var error = Assert.Throws<ArgumentException>(() => AttackCatalog.Parse("square,hopskipjump", new AttackSettings()));
        Assert.Contains("mix threat models", error.Message, StringComparison.Ordinal);
        Assert.Equal("hopskipjump(queries=250)", AttackCatalog.Parse("hopskipjump", new AttackSettings { HopSkipJumpQueries = 250 })[0].Name);
    }
}
