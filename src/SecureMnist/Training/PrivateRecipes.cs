using SecureMnist.Modeling;

namespace SecureMnist.Training;

/// <summary>
/// The DP-SGD recipes of Tramèr and Boneh (2021) for MNIST, shared by <c>train --dp</c> and the assessment: ScatterNet + linear
/// (<see cref="Architectures.ScatterLinear"/>, the default: lr 8, 4,096 of 60,000 images per step) and their end-to-end CNN
/// (<see cref="Architectures.DpCnn"/>: lr 0.5, batch 512); SGD with momentum at a constant rate for 40 epochs, clipping at 0.1.
/// </summary>
public static class PrivateRecipes
{
    public const string Architecture = Architectures.ScatterLinear;
    public const int Epochs = 40;
    public const double TargetEpsilon = 3;
    public const double MaxGradientNorm = 0.1;

    /// <summary>The training images the ScatterNet recipe's batch of 4,096 was set for; a smaller set keeps its sampling rate.</summary>
    public const int RecipeImages = 60_000;

    /// <summary>
    /// The learning rate and expected batch for <paramref name="architecture"/> on <paramref name="trainImages"/> images. scatter-linear
    /// samples the same share per step on a smaller set (683 of 10,000), so the noise per step and the steps per epoch stay as designed.
    /// </summary>
    public static (double LearningRate, int BatchSize) For(string architecture, int trainImages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(trainImages, 2);
        return architecture == Architectures.ScatterLinear
            ? (8, (int)Math.Clamp(Math.Round(4096.0 * Math.Min(trainImages, RecipeImages) / RecipeImages), 1, 4096))
            : (0.5, 512);
    }
}
