using SecureMnist.Data;

namespace SecureMnist.Attacks.Extraction;

/// <summary>
/// The attacker's own images for a knockoff extraction: images the attacker holds without the victim's training data.
/// Pixels are in [0, 1], one flat 784-value array per image.
/// </summary>
public static class SurrogatePools
{
    /// <summary>The first test digits (the test figures use the last 5,000, so no query is a test image).</summary>
    public const string MnistTest = "mnist-test";

    /// <summary>Fashion-MNIST's test images: in the input space but off the digit distribution.</summary>
    public const string FashionMnist = "fashion-mnist";

    /// <summary>Uniform noise in [0, 1].</summary>
    public const string Noise = "noise";

    /// <summary>The pool names, in the order help texts list them.</summary>
    public static IReadOnlyList<string> Names { get; } = [MnistTest, FashionMnist, Noise];

    /// <summary>How many images a pool holds by default (mnist-test may hold no more without reaching the test half).</summary>
    public const int DefaultSize = 5000;

    /// <summary>Builds the named pool. Fashion-MNIST must be downloaded (a <see cref="DatasetException"/> says so when it is not).</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="store">Where the datasets live.</param>
    /// <param name="seed">Seeds the noise pool; the others do not depend on it.</param>
    /// <param name="size">How many images, at most <see cref="DefaultSize"/> for mnist-test.</param>
    public static List<float[]> Load(string name, DatasetStore store, int seed, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        return name switch
        {
            MnistTest => First(store.Load("mnist").Test, Math.Min(size, DefaultSize)),
            FashionMnist => First(store.Load("fashion-mnist").Test, size),
            Noise => UniformNoise(seed, size),
            _ => throw new ArgumentException($"unknown surrogate pool '{name}' (expected one of {string.Join(", ", Names)})", nameof(name)),
        };
    }

    private static List<float[]> First(LabeledImages images, int count) =>
        [.. Enumerable.Range(0, Math.Min(count, images.Count)).Select(i => images.Image(i).ToArray().Select(b => b / 255f).ToArray())];

    private static List<float[]> UniformNoise(int seed, int count)
    {
        var random = new SeededRandom(seed);
        return [.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray())];
    }
}
