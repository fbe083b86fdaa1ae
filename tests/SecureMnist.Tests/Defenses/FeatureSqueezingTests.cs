using SecureMnist.Defenses;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Defenses;

public sealed class FeatureSqueezingTests
{
    [Fact]
    public void The_2x2_median_matches_scipy_median_filter_as_evademl_zoo_uses_it()
    {
        // scipy.ndimage.median_filter(np.arange(1, 10).reshape(3, 3), size=2, mode='reflect'): each pixel takes the upper median of
        // itself, the pixel above, the pixel to the left and the one diagonally up-left, with the first row and column mirrored.
        using var image = arange(1, 10, dtype: ScalarType.Float32).view(1, 1, 3, 3);
        using var filtered = FeatureSqueezing.MedianFilter(image, 2);
        Assert.Equal([1f, 2, 3, 4, 4, 5, 7, 7, 8], filtered.data<float>().ToArray());
    }

    [Fact]
    public void The_min_max_2x2_median_equals_the_sorted_one_on_digits_and_on_noise_with_ties()
    {
        var mnist = TestPaths.Mnist(testImages: 200);
        using var digits = mnist.Test.ImagesTensor();
        using var fast = FeatureSqueezing.UpperMedianOf2x2(digits);
        using var sorted = FeatureSqueezing.MedianBySorting(digits, 2);
        Assert.True(fast.eq(sorted).all().item<bool>(), "the min/max network differs from the sort on MNIST digits");
        manual_seed(7);
        using var noise = (rand(64, 1, 28, 28) * 4).floor() / 4; // few distinct values: many ties
        using var fastNoise = FeatureSqueezing.UpperMedianOf2x2(noise);
        using var sortedNoise = FeatureSqueezing.MedianBySorting(noise, 2);
        Assert.True(fastNoise.eq(sortedNoise).all().item<bool>(), "the min/max network differs from the sort on noise");
        using var odd = rand(3, 1, 5, 7);
        Assert.True(FeatureSqueezing.UpperMedianOf2x2(odd).eq(FeatureSqueezing.MedianBySorting(odd, 2)).all().item<bool>(), "non-square images differ");
    }

    [Fact]
    public void The_3x3_median_is_the_centred_median_with_mirrored_edges()
    {
        using var image = arange(1, 10, dtype: ScalarType.Float32).view(1, 1, 3, 3);
        using var filtered = FeatureSqueezing.MedianFilter(image, 3);
        // Top-left: the window over rows (0, 0, 1) and columns (0, 0, 1) holds 1, 1, 2, 1, 1, 2, 4, 4, 5: median 2.
        Assert.Equal([2f, 3, 3, 4, 5, 6, 7, 7, 8], filtered.data<float>().ToArray());
    }

    [Fact]
    public void A_window_larger_than_the_image_is_refused()
    {
        using var image = zeros(1, 1, 2, 2);
        Assert.Throws<ArgumentException>(() => FeatureSqueezing.MedianFilter(image, 3));
    }
}

/// <summary>The detector against an attacker who knows it, on the shared linear model.</summary>
public sealed class AdaptiveSqueezingTests(SecureMnist.Tests.Attacks.TrainedLinearModel fixture) : IClassFixture<SecureMnist.Tests.Attacks.TrainedLinearModel>
{
    [Fact]
    public void An_attacker_who_knows_the_squeezers_gets_past_far_more_often_than_one_who_does_not()
    {
        using var classifier = new SecureMnist.Attacks.Evasion.NetworkClassifier(fixture.Network);
        using var calibration = fixture.Test.Take(150).ImagesTensor();
        var detector = FeatureSqueezing.Calibrate(classifier, calibration, new SqueezingOptions());
        var data = fixture.Test.Select(Enumerable.Range(150, 150).ToArray());
        using var images = data.ImagesTensor();
        using var labels = data.LabelsTensor();
        double Evaded(SecureMnist.Attacks.Evasion.IEvasionAttack attack)
        {
            using var adversarial = attack.Generate(classifier, images, labels);
            SecureMnist.Attacks.Evasion.AttackEvaluator.CheckThreatModel(attack, images, adversarial);
            var predictions = SecureMnist.Attacks.Evasion.ClassifierInference.Predict(classifier, adversarial);
            var scores = detector.Scores(classifier, adversarial);
            return Enumerable.Range(0, 150).Count(i => predictions[i] != data.Labels[i] && scores[i] <= detector.Threshold) / 150.0;
        }
        var plain = Evaded(new SecureMnist.Attacks.Evasion.Pgd(new SecureMnist.Attacks.Evasion.PgdOptions(0.2, 0.01, 40)));
        var aware = Evaded(new SecureMnist.Attacks.Evasion.SqueezingAwarePgd(new SecureMnist.Attacks.Evasion.SqueezingAwareOptions(0.2, Steps: 40), detector));
        Assert.True(aware >= plain + 0.2, $"evaded both: {aware:P0} knowing the detector, {plain:P0} not knowing it");
    }

    [Fact]
    public void Bad_adaptive_options_are_refused()
    {
        Assert.ThrowsAny<ArgumentException>(() => new SecureMnist.Attacks.Evasion.SqueezingAwareOptions(0.3, Steps: 0).Validate());
        Assert.ThrowsAny<ArgumentException>(() => new SecureMnist.Attacks.Evasion.SqueezingAwareOptions(0.3, Weights: []).Validate());
        Assert.ThrowsAny<ArgumentException>(() => new SecureMnist.Attacks.Evasion.SqueezingAwareOptions(0.3, Weights: [-1]).Validate());
    }
}
