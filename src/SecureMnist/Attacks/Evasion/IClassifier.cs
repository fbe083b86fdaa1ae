using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Evasion;

/// <summary>What an evasion attack needs from a model: logits for images in [0, 1], differentiable w.r.t. the images.</summary>
public interface IClassifier
{
    int ClassCount { get; }

    /// <summary>Logits [N, classes] for images [N, 1, 28, 28] with values in [0, 1].</summary>
    Tensor Logits(Tensor images);
}

/// <summary>
/// A TorchSharp network as an attack target, in evaluation mode. Its parameters are frozen while it is
/// wrapped, so backward passes compute only the input gradient that attacks need.
/// </summary>
public sealed class NetworkClassifier : IClassifier, IDisposable
{
    private readonly Module<Tensor, Tensor> network;
    private readonly bool wasTraining;
    private readonly ScalarType computeType;
    private readonly List<(TorchSharp.Modules.Parameter Parameter, bool RequiredGrad)> frozen = [];

    public NetworkClassifier(Module<Tensor, Tensor> network, int classCount = 10, bool freezeParameters = true)
    {
        ArgumentNullException.ThrowIfNull(network);
        this.network = network;
        ClassCount = classCount;
        wasTraining = network.training;
        computeType = network.parameters().FirstOrDefault()?.dtype ?? ScalarType.Float32;
        network.eval();
        if (freezeParameters)
        {
            foreach (var parameter in network.parameters())
            {
                frozen.Add((parameter, parameter.requires_grad));
                parameter.requires_grad = false;
            }
        }
    }

    public int ClassCount { get; }

    /// <summary>
    /// Logits in float32. A network whose weights are in another type (bfloat16 for fast inference) gets its input cast
    /// to that type and its logits cast back; both casts pass gradients through.
    /// </summary>
    public Tensor Logits(Tensor images) => computeType == ScalarType.Float32
        ? network.call(images)
        : network.call(images.to(computeType)).to(ScalarType.Float32);

    /// <summary>Restores the network's train/eval mode and its parameters' gradient flags.</summary>
    public void Dispose()
    {
        foreach (var (parameter, requiredGrad) in frozen) parameter.requires_grad = requiredGrad;
        network.train(wasTraining);
    }
}

/// <summary>Counts the images a model evaluates (forward passes, with or without a gradient): the work an attack does.</summary>
public sealed class CountingClassifier(IClassifier inner) : IClassifier
{
    private long images;

    public int ClassCount => inner.ClassCount;

    public long Images => Interlocked.Read(ref images);

    public Tensor Logits(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        Interlocked.Add(ref this.images, images.shape[0]);
        return inner.Logits(images);
    }
}

public static class ClassifierInference
{
    /// <summary>Predicted classes for a batch of images, computed without gradients in chunks of <paramref name="batchSize"/>.</summary>
    public static int[] Predict(this IClassifier model, Tensor images, int batchSize = 1000)
    {
        // A refused answer (see RefusedAnswers) predicts no class: -1.
        using var predictions = Chunked(model, images, batchSize, logits => where(RefusedAnswers.Mask(logits), -1, logits.argmax(1)).to(ScalarType.Int32));
        return predictions.data<int>().ToArray();
    }

    /// <summary>Softmax probabilities [N, classes], computed without gradients in chunks of <paramref name="batchSize"/>.</summary>
    public static Tensor Probabilities(this IClassifier model, Tensor images, int batchSize = 1000) =>
        Chunked(model, images, batchSize, logits => functional.softmax(logits, 1));

    private static Tensor Chunked(IClassifier model, Tensor images, int batchSize, Func<Tensor, Tensor> map)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var count = images.shape[0];
        var chunks = new List<Tensor>();
        for (long start = 0; start < count; start += batchSize)
            chunks.Add(map(model.Logits(images.narrow(0, start, Math.Min(batchSize, count - start)))));
        if (chunks.Count == 0) return map(zeros(0, model.ClassCount)).MoveToOuterDisposeScope();
        return cat(chunks, 0).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A remote model may refuse to answer: a defended service withholds its scores. <see cref="RemoteClassifier"/> then gives a NaN row of
/// logits. The attacks take a NaN row as no progress; the evaluator takes a refused adversarial example as one that did not get past (the
/// input stays robust) only for a model that can refuse, a remote one. A local network that answers NaN is broken, not robust: its NaN
/// rows stay wrong answers. A NaN clean answer predicts no class.
/// </summary>
public static class RefusedAnswers
{
    /// <summary>True for each row the model refused to answer.</summary>
    public static Tensor Mask(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        return logits.isnan().any(1);
    }

    /// <summary>
    /// The predicted class per row. For a model that can refuse (<see cref="RemoteClassifier"/>), a refused row is answered by its true
    /// label: the attack did not get past. For any other model a NaN row predicts no class (-1), so it can never count as robust.
    /// </summary>
    public static Tensor Predictions(IClassifier model, Tensor logits, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        return where(Mask(logits), model is RemoteClassifier ? labels : full_like(labels, -1), logits.argmax(1));
    }
}
