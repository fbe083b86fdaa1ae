using static TorchSharp.torch;

namespace SecureMnist.Modeling;

/// <summary>A network whose penultimate-layer activations can be read (poison detection, explanations).</summary>
public interface IFeatureExtractor
{
    Tensor Features(Tensor input);
}
