using SecureMnist.Modeling;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Modeling;

public sealed class ArchitectureTests
{
    [Theory]
    [InlineData(Architectures.SeedCnn, 1_199_882)]
    [InlineData(Architectures.WideCnn, 3_274_634)]
    [InlineData(Architectures.SmallCnn, 312_202)]
    [InlineData(Architectures.LinearSoftmax, 7_850)]
    public void Architectures_have_their_documented_size_and_output(string name, long parameters)
    {
        using var network = Architectures.Create(name);
        Assert.Equal(parameters, Architectures.ParameterCount(network));
        network.eval();
        using var output = network.call(rand(3, 1, 28, 28));
        Assert.Equal(new long[] { 3, 10 }, output.shape);
    }

    [Fact]
    public void Seed_cnn_matches_the_reference_layer_order()
    {
        // relu(pool(x)) == pool(relu(x)) and the channels-last copy must not change any value.
        manual_seed(3);
        using var network = new SeedCnn();
        network.eval();
        using var input = rand(4, 1, 28, 28);
        var p = network.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        using var x = (input - InputNormalization.Mean) / InputNormalization.StandardDeviation;
        using var h1 = nn.functional.relu(nn.functional.conv2d(x, p["conv1.weight"], p["conv1.bias"]));
        using var h2 = nn.functional.max_pool2d(nn.functional.relu(nn.functional.conv2d(h1, p["conv2.weight"], p["conv2.bias"])), 2);
        using var h3 = nn.functional.relu(nn.functional.linear(h2.flatten(1), p["fc1.weight"], p["fc1.bias"]));
        using var expected = nn.functional.linear(h3, p["fc2.weight"], p["fc2.bias"]);
        using var actual = network.call(input);
        Assert.True(actual.allclose(expected, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void Seeded_dropout_drops_the_requested_share_and_keeps_the_mean()
    {
        var dropout = new SeededDropout(0.25);
        dropout.train();
        using var input = ones(1000, 1000);
        using var output = dropout.call(input);
        var dropped = output.eq(0).to(ScalarType.Float32).mean().item<float>();
        Assert.InRange(dropped, 0.245, 0.255);
        Assert.InRange(output.mean().item<float>(), 0.99, 1.01);
        dropout.eval();
        using var evaluated = dropout.call(input);
        Assert.True(evaluated.eq(input).all().item<bool>());
    }

    [Fact]
    public void Unknown_architectures_are_refused_with_the_known_names()
    {
        var error = Assert.Throws<ArgumentException>(() => Architectures.Create("resnet"));
        Assert.Contains("seed-cnn", error.Message, StringComparison.Ordinal);
    }
}
