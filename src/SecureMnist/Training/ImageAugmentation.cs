using static TorchSharp.torch;

namespace SecureMnist.Training;

/// <summary>Training-time augmentation of image batches [N, 1, H, W].</summary>
public static class ImageAugmentation
{
    /// <summary>Largest translation <see cref="Shift"/> accepts, in pixels.</summary>
    public const int MaxShift = 8;

    /// <summary>
    /// Moves every image by its own whole-pixel offset, drawn uniformly from [-<paramref name="maxShift"/>, <paramref name="maxShift"/>]
    /// in each direction by <paramref name="generator"/> (or the global generator); pixels moved in from outside are 0 (background).
    /// Two gathers on the zero-padded batch, so the whole batch moves in one pass.
    /// </summary>
    public static Tensor Shift(Tensor images, int maxShift, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4) throw new ArgumentException($"expected a batch [N, C, H, W], got shape [{string.Join(", ", images.shape)}]", nameof(images));
        ArgumentOutOfRangeException.ThrowIfNegative(maxShift);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxShift, MaxShift);
        if (maxShift == 0) return images.alias();
        using var scope = NewDisposeScope();
        var (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3]);
        var padded = nn.functional.pad(images, [maxShift, maxShift, maxShift, maxShift]);
        // Offset k into the padded image means a shift of maxShift - k.
        var rowOffsets = randint(0, 2 * maxShift + 1, [n, 1], generator: generator, device: images.device);
        var columnOffsets = randint(0, 2 * maxShift + 1, [n, 1], generator: generator, device: images.device);
        var rows = (rowOffsets + arange(h, device: images.device).unsqueeze(0)).view(n, 1, h, 1).expand(n, c, h, w + 2 * maxShift);
        var columns = (columnOffsets + arange(w, device: images.device).unsqueeze(0)).view(n, 1, 1, w).expand(n, c, h, w);
        return padded.gather(2, rows).gather(3, columns).MoveToOuterDisposeScope();
    }
}
