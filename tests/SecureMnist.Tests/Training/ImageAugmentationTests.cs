using SecureMnist.Training;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Training;

public sealed class ImageAugmentationTests
{
    /// <summary>A batch of identical 28x28 images, each a 3x2 block of distinct values away from the border.</summary>
    private static Tensor Blocks(int count)
    {
        var image = zeros(1, 1, 28, 28);
        for (var r = 0; r < 3; r++)
            for (var c = 0; c < 2; c++)
                image[0, 0, 12 + r, 13 + c] = tensor(0.1f * (1 + r * 2 + c));
        return image.expand(count, 1, 28, 28).contiguous();
    }

    /// <summary>Where each image's block now starts (row, column) minus where it started.</summary>
    private static (long Row, long Column)[] Offsets(Tensor shifted)
    {
        var offsets = new (long, long)[shifted.shape[0]];
        for (var i = 0; i < offsets.Length; i++)
        {
            var lit = shifted[i, 0].nonzero();
            offsets[i] = (lit[.., 0].min().item<long>() - 12, lit[.., 1].min().item<long>() - 13);
        }
        return offsets;
    }

    [Fact]
    public void Each_image_is_translated_whole_by_at_most_the_shift_and_every_offset_occurs()
    {
        using var images = Blocks(400);
        using var shifted = ImageAugmentation.Shift(images, 2, new Generator(7));
        var offsets = Offsets(shifted);
        Assert.All(offsets, o => Assert.True(Math.Abs(o.Row) <= 2 && Math.Abs(o.Column) <= 2, $"offset {o}"));
        Assert.Equal(25, offsets.Distinct().Count());
        for (var i = 0; i < offsets.Length; i++)
        {
            // The block arrives intact: the image equals the original rolled by the offset (nothing reaches the border).
            using var expected = images[i].roll([offsets[i].Row, offsets[i].Column], [1, 2]);
            Assert.True(shifted[i].allclose(expected, 0, 0), $"image {i} is not the original moved by {offsets[i]}");
        }
    }

    [Fact]
    public void Pixels_moved_in_from_outside_are_background()
    {
        using var images = ones(64, 1, 28, 28);
        using var shifted = ImageAugmentation.Shift(images, 3, new Generator(1));
        var offsets = Enumerable.Range(0, 64).Select(i => shifted[i, 0].sum().item<float>()).ToArray();
        // Each image keeps (28 - |dy|) x (28 - |dx|) ones; some images move, none gains mass.
        Assert.All(offsets, mass => Assert.True(mass <= 28 * 28 && mass >= 25 * 25, $"mass {mass}"));
        Assert.Contains(offsets, mass => mass < 28 * 28);
        Assert.True(shifted.max().item<float>() == 1 && shifted.min().item<float>() == 0);
    }

    [Fact]
    public void The_same_generator_seed_gives_the_same_batch_and_zero_shift_is_the_identity()
    {
        using var images = Blocks(50);
        using var a = ImageAugmentation.Shift(images, 2, new Generator(3));
        using var b = ImageAugmentation.Shift(images, 2, new Generator(3));
        Assert.True(a.allclose(b, 0, 0));
        using var same = ImageAugmentation.Shift(images, 0);
        Assert.True(same.allclose(images, 0, 0));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(ImageAugmentation.MaxShift + 1)]
    public void Bad_shifts_and_shapes_are_refused(int shift)
    {
        using var images = Blocks(2);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageAugmentation.Shift(images, shift));
        using var flat = zeros(2, 784);
        Assert.Throws<ArgumentException>(() => ImageAugmentation.Shift(flat, 1));
    }
}
