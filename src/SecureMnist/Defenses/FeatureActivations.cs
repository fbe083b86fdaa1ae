using SecureMnist.Data;
using SecureMnist.Modeling;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Defenses;

/// <summary>Rows that describe a set of images, row-major [Count, Dimensions]: a network's penultimate-layer activations, or the pixels themselves.</summary>
public sealed record FeatureActivations(float[] Values, int Count, int Dimensions)
{
    public ReadOnlySpan<float> Row(int index) => Values.AsSpan(index * Dimensions, Dimensions);

    /// <summary>The images themselves as rows, pixels scaled to [0, 1]: the space an input-space detector reads.</summary>
    public static FeatureActivations Pixels(LabeledImages data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var values = new float[data.Pixels.Length];
        for (var i = 0; i < values.Length; i++) values[i] = data.Pixels[i] / 255f;
        return new FeatureActivations(values, data.Count, data.PixelsPerImage);
    }

    /// <summary>Runs the network in evaluation mode and reads its penultimate-layer activations for every image.</summary>
    public static FeatureActivations Extract(Module<Tensor, Tensor> network, LabeledImages data, int batchSize = 1000,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        if (network is not IFeatureExtractor extractor)
            throw new ArgumentException($"{network.GetName()} does not expose penultimate-layer activations; poison detection needs a network that does");
        var wasTraining = network.training;
        network.eval();
        try
        {
            using var inference = inference_mode();
            using var images = data.ImagesTensor();
            float[]? values = null;
            var dimensions = 0;
            for (var start = 0; start < data.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, data.Count - start);
                var features = extractor.Features(images.narrow(0, start, length)).flatten(1).contiguous();
                if (values is null)
                {
                    dimensions = (int)features.shape[1];
                    values = new float[checked(data.Count * dimensions)];
                }
                features.data<float>().CopyTo(values.AsSpan(start * dimensions, length * dimensions));
                progress?.Report((start + length, data.Count));
            }
            return new FeatureActivations(values ?? [], data.Count, dimensions);
        }
        finally
        {
            network.train(wasTraining);
        }
    }
}
