using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Tests.Attacks;

/// <summary>A linear softmax classifier trained briefly on real MNIST, shared by the attack tests.</summary>
public sealed class TrainedLinearModel : IDisposable
{
    public TrainedLinearModel()
    {
        var mnist = TestPaths.Mnist();
        var directory = TestPaths.NewScratchDirectory();
        try
        {
            var options = new TrainingOptions { Architecture = Architectures.LinearSoftmax, TrainSubset = 5000, Epochs = 2, LearningRate = 0.01, Schedule = "constant" };
            Network = new Trainer(options, mnist, directory).Run(resume: false).Network;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
        Test = mnist.Test.Take(300);
    }

    public Module<Tensor, Tensor> Network { get; }
    public LabeledImages Test { get; }

    public void Dispose() => Network.Dispose();
}
