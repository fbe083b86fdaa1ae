using SecureMnist.Modeling;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Modeling;

/// <summary>Layer lists for networks we do not define: what they may say, the shapes they must add up to, and the size they may reach.</summary>
public sealed class ArchitectureSpecTests
{
    private const string Head = """{"type": "Flatten"}, {"type": "Linear", "in_features": 1176, "out_features": 10}""";

    [Fact]
    public void A_spec_walks_its_shapes_to_ten_logits_and_builds_a_network_with_sequential_names()
    {
        var spec = ArchitectureSpec.Parse($$"""
            {"normalize": {"mean": 0.5, "std": 0.25}, "layers": [
              {"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 3, "stride": 1, "padding": 1, "bias": false},
              {"type": "BatchNorm2d", "num_features": 6}, {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
              {"type": "Dropout", "p": 0.25}, {{Head}}]}
            """);
        // 6x1x3x3 (no bias) + BatchNorm's weight, bias, running mean and variance (4 x 6) and its batch count + Linear(6 x 14 x 14 = 1,176, 10).
        Assert.Equal(54 + 25 + 1176 * 10 + 10, spec.Validate());
        using var network = new SpecNetwork(spec);
        Assert.Equal(["0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight", "6.bias", "6.weight"],
            network.state_dict().Keys.Order(StringComparer.Ordinal));
        network.eval();
        using var images = rand(3, 1, 28, 28);
        using var logits = network.call(images);
        Assert.Equal([3L, 10], logits.shape);
        using var features = network.Features(images);
        Assert.Equal([3L, 1176], features.shape); // the input of the last Linear
        Assert.Contains("(0) Conv2d(1, 6, kernel_size=3, padding=1, bias=False)", spec.Describe(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"layers": [{"type": "Conv3d"}]}""", "layer 0: type 'Conv3d' is not supported; one of Conv2d")]
    [InlineData("""{"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel": 3}]}""", "layer 0 (Conv2d): unknown argument 'kernel'; it takes in_channels, out_channels, kernel_size")]
    [InlineData("""{"layers": [{"type": "ReLU", "inplace": true}]}""", "layer 0 (ReLU): unknown argument 'inplace'; it takes none")]
    [InlineData("""{"layers": [{"type": "Conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3}]}""", "layer 0 (Conv2d) takes 3 input channels; its input is [1, 28, 28]")]
    [InlineData("""{"layers": [{"type": "Linear", "in_features": 784, "out_features": 10}]}""", "layer 0 (Linear) needs a flat input; its input is [1, 28, 28]: put a Flatten before it")]
    [InlineData("""{"layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 12}]}""", "it must end in 10 logits")]
    [InlineData("""{"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 29}]}""", "kernel_size 29 is outside 1-28")]
    [InlineData("""{"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": "3"}]}""", "kernel_size must be a whole number")]
    [InlineData("""{"layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 4096}, {"type": "Linear", "in_features": 4096, "out_features": 4096}, {"type": "Linear", "in_features": 4096, "out_features": 4096}, {"type": "Linear", "in_features": 4096, "out_features": 4096}, {"type": "Linear", "in_features": 4096, "out_features": 4096}]}""", "at most 67,108,864")]
    [InlineData("""{"layers": [], "extra": 1}""", "unknown field 'extra'")]
    [InlineData("""{"normalize": {"mean": 0.1, "std": 0}, "layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784, "out_features": 10}]}""", "std positive")]
    [InlineData("""[1, 2]""", "a spec is a JSON object")]
    [InlineData("""{"layers": [""", "not valid JSON")]
    public void A_spec_that_does_not_describe_a_buildable_network_is_refused_saying_where(string json, string message)
    {
        var error = Assert.Throws<ArchitectureSpecException>(() => ArchitectureSpec.Parse(json));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_size_is_refused_before_anything_is_allocated()
    {
        // 4,096 x 4,096 x 5 Linear layers would take 335 MB of floats; the spec is refused from its arithmetic alone.
        var layers = new List<LayerSpec> { new("Flatten"), new("Linear", InFeatures: 784, OutFeatures: 4096) };
        layers.AddRange(Enumerable.Repeat(new LayerSpec("Linear", InFeatures: 4096, OutFeatures: 4096), 4));
        Assert.Throws<ArchitectureSpecException>(() => new SpecNetwork(new ArchitectureSpec(layers)));
        Assert.Throws<ArgumentException>(() => Architectures.Create(Architectures.Custom, null));
        Assert.Throws<ArgumentException>(() => Architectures.Create(Architectures.SeedCnn, new ArchitectureSpec(layers)));
    }
}
