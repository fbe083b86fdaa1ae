namespace SecureMnist.Modeling;

/// <summary>MNIST's pixel statistics; models normalise inside forward so attacks work in [0, 1] pixel space.</summary>
public static class InputNormalization
{
    public const float Mean = 0.1307f;
    public const float StandardDeviation = 0.3081f;
}
