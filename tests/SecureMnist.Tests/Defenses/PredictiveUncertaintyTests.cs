using SecureMnist.Defenses;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Defenses;

public sealed class PredictiveUncertaintyTests
{
    [Fact]
    public void Agreeing_members_have_no_mutual_information_and_disagreeing_ones_do()
    {
        using var sure = tensor(new double[] { 1, 0, 0, 0 }).view(1, 4);
        using var uniform = full(1, 4, 0.25, dtype: ScalarType.Float64);
        var agree = PredictiveUncertainty.Of([sure, sure]);
        Assert.Equal(0, agree.MaxSoftmax[0], 9);
        Assert.Equal(0, agree.Entropy[0], 9);
        Assert.Equal(0, agree.MutualInformation[0], 9);

        var unsure = PredictiveUncertainty.Of([uniform, uniform]);
        Assert.Equal(0.75, unsure.MaxSoftmax[0], 9);
        Assert.Equal(Math.Log(4), unsure.Entropy[0], 9);
        Assert.Equal(0, unsure.MutualInformation[0], 9); // uncertain, but every member says so: aleatoric

        using var other = tensor(new double[] { 0, 1, 0, 0 }).view(1, 4);
        var disagree = PredictiveUncertainty.Of([sure, other]);
        Assert.Equal(0.5, disagree.MaxSoftmax[0], 9);
        Assert.Equal(Math.Log(2), disagree.Entropy[0], 9);
        Assert.Equal(Math.Log(2), disagree.MutualInformation[0], 9); // each member is sure: all of it is disagreement
    }

    [Fact]
    public void Mc_dropout_samples_differ_and_are_reproducible_and_the_network_keeps_its_mode()
    {
        using var network = SecureMnist.Modeling.Architectures.Create(SecureMnist.Modeling.Architectures.SeedCnn);
        network.eval();
        using var images = rand(4, 1, 28, 28);
        var first = PredictiveUncertainty.McDropout(network, images, samples: 3, seed: 5);
        var again = PredictiveUncertainty.McDropout(network, images, samples: 3, seed: 5);
        Assert.False(network.training);
        Assert.False(first[0].eq(first[1]).all().item<bool>(), "dropout samples should differ");
        Assert.True(first[2].eq(again[2]).all().item<bool>(), "the same seed should give the same samples");
        Assert.Throws<ArgumentOutOfRangeException>(() => PredictiveUncertainty.McDropout(network, images, samples: 1, seed: 5));
        Assert.Throws<ArgumentException>(() => PredictiveUncertainty.Of([]));
    }
}
