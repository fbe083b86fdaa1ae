using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

public sealed class DigitImageTests
{
    [Fact]
    public void A_large_drawing_is_normalised_like_mnist()
    {
        // A 200x200 white bar off to one side becomes a 20-pixel-tall glyph centred in 28x28.
        var gray = new float[200 * 200];
        for (var y = 20; y < 180; y++)
            for (var x = 10; x < 40; x++)
                gray[(y * 200) + x] = 1;
        var digit = DigitImage.Normalise(gray, 200, 200);
        Assert.Equal(784, digit.Length);
        var rows = Enumerable.Range(0, 28).Where(y => Enumerable.Range(0, 28).Any(x => digit[(y * 28) + x] > 0.5f)).ToArray();
        Assert.InRange(rows.Length, 19, 21);
        double mass = digit.Sum(), cx = digit.Select((v, i) => v * (i % 28)).Sum() / mass, cy = digit.Select((v, i) => v * (i / 28)).Sum() / mass;
        Assert.InRange(cx, 12.5, 14.5);
        Assert.InRange(cy, 12.5, 14.5);
    }

    [Fact]
    public void A_28x28_image_passes_through_unchanged()
    {
        var values = Enumerable.Range(0, 784).Select(i => (i % 7) / 7f).ToArray();
        Assert.Same(values, DigitImage.Normalise(values, 28, 28));
    }

    [Theory]
    [InlineData(double.NaN, "finite")]
    [InlineData(double.PositiveInfinity, "finite")]
    [InlineData(-0.1, "[0, 1]")]
    [InlineData(1.5, "[0, 1]")]
    public void Bad_values_are_refused(double bad, string message)
    {
        var values = Enumerable.Repeat(0.0, 784).ToArray();
        values[3] = bad;
        Assert.Contains(message, Assert.Throws<InputRejectedException>(() => DigitImage.FromValues(values)).Message);
    }

    [Fact]
    public void Real_digits_pass_the_statistics_and_flat_pictures_do_not()
    {
        var mnist = TestPaths.Mnist();
        var statistics = DigitStatistics.Fit(mnist.Train);
        var passed = Enumerable.Range(0, 1000).Count(i => statistics.Check(mnist.Test.Image(i).ToArray().Select(b => b / 255f).ToArray()) is null);
        Assert.True(passed >= 990, $"{passed}/1000 test digits passed");
        Assert.Contains("blank", statistics.Check(new float[784]));
        Assert.NotNull(statistics.Check(Enumerable.Repeat(0.5f, 784).ToArray()));
        Assert.NotNull(statistics.Check(Enumerable.Repeat(1f, 784).ToArray()));
    }
}
