using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Interop;

/// <summary>
/// An ONNX classifier run by ONNX Runtime behind the same interface as our networks: images [N, 1, 28, 28] in [0, 1] in, 10 logits out.
/// The model is loaded from bytes (never a path, so it cannot reach files beside it), after <see cref="OnnxModelFile"/> found only
/// standard operators and no external data; no custom-op library is ever registered. It gives scores, not gradients: white-box
/// attacks are refused, black-box ones (Square, HopSkipJump) and evaluation run as on any model.
/// </summary>
public sealed class OnnxNetwork : Module<Tensor, Tensor>
{
    private readonly InferenceSession session;
    private readonly string inputName;
    private readonly string outputName;
    private readonly bool flatInput;
    private readonly int fixedBatch;

    public OnnxNetwork(byte[] model) : base(nameof(OnnxNetwork))
    {
        ArgumentNullException.ThrowIfNull(model);
        Summary = OnnxModelFile.Read(model);
        if (Summary.Problems() is { Count: > 0 } problems) throw new OnnxFormatException($"not loaded: {problems[0]}");
        if (Summary.Initializers.FirstOrDefault(t => t.ExternalLocation is not null) is { } external)
            throw new OnnxFormatException($"not loaded: initializer '{external.Name}' keeps its data in '{external.ExternalLocation}'; a model here carries its weights inside the file");
        using var options = new SessionOptions { IntraOpNumThreads = Math.Max(1, get_num_threads()), GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        try
        {
            session = new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxFormatException($"ONNX Runtime cannot load it: {e.Message}");
        }
        if (session.InputMetadata.Count != 1 || session.OutputMetadata.Count < 1)
            throw Refuse($"it has {session.InputMetadata.Count} inputs and {session.OutputMetadata.Count} outputs; a classifier here takes one image input");
        var (name, input) = session.InputMetadata.First();
        if (input.ElementType != typeof(float)) throw Refuse($"its input '{name}' is {input.ElementType.Name}; images are float32");
        var dims = input.Dimensions;
        flatInput = dims.Length == 2 && dims[1] == 784;
        if (!flatInput && !(dims.Length == 4 && dims[1] == 1 && dims[2] == 28 && dims[3] == 28))
            throw Refuse($"its input '{name}' is [{string.Join(", ", dims)}]; it must be [N, 1, 28, 28] or [N, 784]");
        (inputName, outputName, fixedBatch) = (name, session.OutputMetadata.First().Key, dims[0] > 0 ? dims[0] : 0);
        using var probe = zeros(1, 1, 28, 28);
        using var logits = forward(probe);
        if (logits.shape is not [1, 10]) throw Refuse($"its output is [{string.Join(", ", logits.shape)}] for one image; a classifier here gives 10 logits");
    }

    /// <summary>What the file holds: operators, weights, opsets.</summary>
    public OnnxModelSummary Summary { get; }

    public long ParameterCount => Summary.Initializers.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));

    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.requires_grad)
            throw new InvalidOperationException("an ONNX model gives scores, not gradients: white-box attacks need a native package; use the black-box ones (square, hopskipjump)");
        var count = (int)input.shape[0];
        using var contiguous = input.detach().to(ScalarType.Float32).cpu().contiguous();
        var pixels = contiguous.data<float>().ToArray();
        if (pixels.Length != count * 784) throw new ArgumentException($"images must be [N, 1, 28, 28]; got [{string.Join(", ", input.shape)}]");
        var chunk = fixedBatch > 0 ? fixedBatch : Math.Max(1, count);
        var logits = new float[count * 10];
        for (var start = 0; start < count; start += chunk)
        {
            var length = Math.Min(chunk, count - start);
            var batch = new float[chunk * 784]; // a fixed batch is padded with blank images
            Array.Copy(pixels, start * 784, batch, 0, length * 784);
            long[] shape = flatInput ? [chunk, 784] : [chunk, 1, 28, 28];
            using var value = OrtValue.CreateTensorValueFromMemory(batch, shape);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [inputName], [value], [outputName]);
            var result = outputs[0].GetTensorDataAsSpan<float>();
            if (result.Length != chunk * 10) throw Refuse($"it answered {result.Length} values for {chunk} images; a classifier here gives 10 logits each");
            result[..(length * 10)].CopyTo(logits.AsSpan(start * 10));
        }
        return tensor(logits, [count, 10]);
    }

    private static OnnxFormatException Refuse(string why) => new($"not a classifier of 28x28 images: {why}");

    protected override void Dispose(bool disposing)
    {
        if (disposing) session?.Dispose();
        base.Dispose(disposing);
    }
}
