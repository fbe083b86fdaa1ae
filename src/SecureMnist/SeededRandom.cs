using System.Diagnostics.CodeAnalysis;

namespace SecureMnist;

/// <summary>
/// Seeded, reproducible randomness for experiments: shuffles, subsets, poisoned-sample choice, clustering starts, STRIP
/// overlays. A rerun with the same seed gives the same numbers. Nothing secret ever comes from here: keys and API
/// tokens use <see cref="System.Security.Cryptography.RandomNumberGenerator"/>.
/// </summary>
[SuppressMessage("Security", "CA5394:Do not use insecure randomness", Justification = "Reproducible experiment randomness, never used for secrets.")]
public sealed class SeededRandom(int seed)
{
    private readonly Random random = new(seed);

    public int Next(int maxExclusive) => random.Next(maxExclusive);

    public int Next(int minInclusive, int maxExclusive) => random.Next(minInclusive, maxExclusive);

    public double NextDouble() => random.NextDouble();

    public void Shuffle<T>(Span<T> values) => random.Shuffle(values);

    public void NextBytes(Span<byte> buffer) => random.NextBytes(buffer);
}
