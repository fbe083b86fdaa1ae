using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Modeling;

/// <summary>
/// Inverted dropout whose mask comes from random bytes (xoshiro256**): each unit is dropped when its byte is below
/// round(p * 256). On this CPU it is about twice as fast as libtorch's Bernoulli sampling, and its
/// stream is seeded from torch's generator, so torch.manual_seed still makes a run reproducible.
/// </summary>
public sealed class SeededDropout : Module<Tensor, Tensor>
{
    private readonly byte threshold;
    // Held by the module: a Scalar made implicitly for one call is unreferenced once its handle is read, and the
    // finalizer can free it while libtorch still reads it (a rare "Expected false to be true" from Scalar::toDouble).
    private readonly Scalar thresholdScalar, scale;
    private byte[] buffer = [];

    public SeededDropout(double probability) : base(nameof(SeededDropout))
    {
        if (probability is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(probability), probability, "dropout probability must be in [0, 1)");
        threshold = (byte)Math.Round(probability * 256);
        thresholdScalar = threshold.ToScalar();
        scale = (256f / (256 - threshold)).ToScalar();
    }

    public override Tensor forward(Tensor input)
    {
        if (!training || threshold == 0) return input.alias();
        using var scope = NewDisposeScope();
        var length = checked((int)input.numel());
        if (buffer.Length != length) buffer = new byte[length];
        var seed = randint(long.MaxValue, [1], dtype: ScalarType.Int64).item<long>();
        FillRandom(buffer, (ulong)seed);
        var mask = tensor(buffer, ScalarType.Byte).view(input.shape).ge(thresholdScalar).to(input.dtype).mul_(scale);
        return (input * mask).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            thresholdScalar.Dispose();
            scale.Dispose();
        }
        base.Dispose(disposing);
    }

    // xoshiro256** seeded through SplitMix64: eight bytes per step, far faster than a seeded System.Random.
    private static void FillRandom(Span<byte> destination, ulong seed)
    {
        ulong SplitMix()
        {
            unchecked
            {
                seed += 0x9E3779B97F4A7C15UL;
                var z = seed;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                return z ^ (z >> 31);
            }
        }
        ulong s0 = SplitMix(), s1 = SplitMix(), s2 = SplitMix(), s3 = SplitMix();
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(destination);
        for (var i = 0; i <= words.Length; i++)
        {
            var result = unchecked(System.Numerics.BitOperations.RotateLeft(s1 * 5, 7) * 9);
            var t = s1 << 17;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = System.Numerics.BitOperations.RotateLeft(s3, 45);
            if (i < words.Length)
            {
                words[i] = result;
            }
            else
            {
                var tail = destination[(words.Length * 8)..];
                for (var b = 0; b < tail.Length; b++) tail[b] = (byte)(result >> (8 * b));
            }
        }
    }
}
