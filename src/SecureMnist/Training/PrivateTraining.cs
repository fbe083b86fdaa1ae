using SecureMnist.Modeling;
using SecureMnist.Privacy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Training;

/// <summary>
/// A DP-SGD run's plan and mechanism: the sampling rate q = batch size / training images, a fixed number of steps per epoch
/// (ceil(1/q), so an epoch sees each example once in expectation), the noise multiplier (given, or the smallest that keeps the
/// whole run within the target epsilon), and the <see cref="DpSgd"/> that privatizes each step's gradients and accounts for it.
/// </summary>
public sealed class PrivateTraining
{
    private PrivateTraining(PrivacyOptions options, int trainImages, int stepsPerEpoch, long totalSteps, double sampleRate, double noiseMultiplier)
    {
        Options = options;
        TrainImages = trainImages;
        StepsPerEpoch = stepsPerEpoch;
        TotalSteps = totalSteps;
        Mechanism = new DpSgd(new DpSgdOptions(noiseMultiplier, options.MaxGradientNorm, sampleRate), trainImages, new Generator(0), options.SecureNoise);
    }

    public PrivacyOptions Options { get; }
    public int TrainImages { get; }
    public int StepsPerEpoch { get; }
    public long TotalSteps { get; }
    public DpSgd Mechanism { get; }

    /// <summary>Plans a run of <paramref name="epochs"/> epochs over <paramref name="trainImages"/> images with expected batch <paramref name="batchSize"/>.</summary>
    public static PrivateTraining Plan(PrivacyOptions options, int trainImages, int batchSize, int epochs)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (batchSize >= trainImages) throw new ArgumentException($"the expected batch ({batchSize}) must be smaller than the training set ({trainImages} images) for Poisson sampling to amplify privacy");
        if (options.Delta >= 1.0 / trainImages)
            throw new ArgumentException($"delta {options.Delta:G3} is not below 1 / {trainImages} training images: a guarantee that weak allows one whole example to leak; use e.g. --delta 1e-5");
        var sampleRate = (double)batchSize / trainImages;
        var stepsPerEpoch = (int)Math.Ceiling(1 / sampleRate);
        var totalSteps = (long)stepsPerEpoch * epochs;
        var sigma = options.NoiseMultiplier ?? RdpAccountant.NoiseMultiplier(options.TargetEpsilon!.Value, options.Delta, sampleRate, totalSteps);
        return new PrivateTraining(options, trainImages, stepsPerEpoch, totalSteps, sampleRate, sigma);
    }

    public double NoiseMultiplier => Mechanism.Options.NoiseMultiplier;
    public double SampleRate => Mechanism.Options.SampleRate;

    /// <summary>Accounts for epochs already run (on resume): every epoch takes the same steps at the same settings.</summary>
    public void AccountCompletedEpochs(int epochs)
    {
        if (epochs > 0) Mechanism.Accountant.Step(NoiseMultiplier, SampleRate, (long)epochs * StepsPerEpoch);
    }

    public double EpsilonSpent => Mechanism.Accountant.Epsilon(Options.Delta).Epsilon;

    /// <summary>The guarantee of the steps taken so far.</summary>
    public PrivacyRecord Record()
    {
        var (epsilon, order) = Mechanism.Accountant.Epsilon(Options.Delta);
        return new PrivacyRecord(epsilon, Options.Delta, NoiseMultiplier, SampleRate, Mechanism.Accountant.Steps, Options.MaxGradientNorm, order,
            PrivacyRecord.RdpAccountant, Options.SecureNoise);
    }

    /// <summary>
    /// One DP-SGD step: a Poisson sample of the training set, the summed loss backpropagated once, per-example gradients clipped and
    /// summed, Gaussian noise added, the optimizer stepped. Returns the sample's summed loss, correct count and size. With
    /// <paramref name="featureInputs"/>, <paramref name="images"/> hold the network's fixed features (<see cref="IFixedFeatureNetwork"/>)
    /// rather than the images.
    /// </summary>
    public (double LossSum, long Correct, long Count) Step(Module<Tensor, Tensor> network, optim.Optimizer optimizer, IReadOnlyList<Parameter> parameters,
        Tensor images, Tensor labels, SeededRandom sampler, bool featureInputs = false)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var recording = network as IRecordingNetwork ?? throw new ArgumentException($"{network?.GetType().Name} does not record per-example gradients", nameof(network));
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var picked = Mechanism.Sample(TrainImages, sampler);
        double lossSum = 0;
        long correct = 0;
        if (picked.Length == 0) Mechanism.PrivatizeGradients(parameters, null);
        else
        {
            var indices = tensor(picked, ScalarType.Int64);
            var x = images.index_select(0, indices);
            var y = labels.index_select(0, indices);
            var (logits, taps) = featureInputs
                ? (recording as IFixedFeatureNetwork ?? throw new ArgumentException($"{network!.GetType().Name} has no fixed features", nameof(network))).ForwardRecordedFromFeatures(x)
                : recording.ForwardRecorded(x);
            var loss = functional.cross_entropy(logits, y, reduction: Reduction.Sum);
            loss.backward();
            Mechanism.PrivatizeGradients(parameters, PerSampleGradients.Of(taps));
            lossSum = loss.item<float>();
            correct = logits.argmax(1).eq(y).sum().item<long>();
        }
        optimizer.step();
        return (lossSum, correct, picked.Length);
    }
}
