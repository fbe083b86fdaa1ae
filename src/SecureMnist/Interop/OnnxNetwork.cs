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
        try
        {
            if (session.InputMetadata.Count != 1 || session.OutputMetadata.Count < 1)
                throw Refuse($"it has {session.InputMetadata.Count} inputs and {session.OutputMetadata.Count} outputs; a classifier here takes one image input");
            var (name, input) = session.InputMetadata.First();
            if (input.ElementType != typeof(float)) throw Refuse($"its input '{name}' is {input.ElementType.Name}; images are float32");
            var dims = input.Dimensions;
            flatInput = dims.Length == 2 && dims[1] == 784;
            if (!flatInput && !(dims.Length == 4 && dims[1] == 1 && dims[2] == 28 && dims[3] == 28))
                throw Refuse($"its input '{name}' is [{string.Join(", ", dims)}]; it must be [N, 1, 28, 28] or [N, 784]");
            (inputName, outputName, fixedBatch) = (name, session.OutputMetadata.First().Key, dims[0] > 0 ? dims[0] : 0);
            // One image, and (unless the batch is fixed) two: a graph that reshapes to a batch of one passes the first probe only.
            foreach (var count in fixedBatch > 0 ? [1] : new[] { 1, 2 })
            {
                using var probe = zeros(count, 1, 28, 28);
                using var logits = forward(probe);
                if (logits.shape[0] != count || logits.shape is not [_, 10])
                    throw Refuse($"its output is [{string.Join(", ", logits.shape)}] for {count} image(s); a classifier here gives 10 logits each");
            }
        }
        catch
        {
            // A refused model never reaches its owner, so nobody else would release the native session.
            session.Dispose();
            throw;
        }
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
            using var outputs = Run(runOptions, value);
            var result = outputs[0].GetTensorDataAsSpan<float>();
            if (result.Length != chunk * 10) throw Refuse($"it answered {result.Length} values for {chunk} images; a classifier here gives 10 logits each");
            result[..(length * 10)].CopyTo(logits.AsSpan(start * 10));
        }
        return tensor(logits, [count, 10]);
    }

    private IDisposableReadOnlyCollection<OrtValue> Run(RunOptions runOptions, OrtValue value)
    {
        try
        {
            return session.Run(runOptions, [inputName], [value], [outputName]);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxFormatException($"ONNX Runtime could not run the model: {e.Message}");
        }
    }

    private static OnnxFormatException Refuse(string why) => new($"not a classifier of 28x28 images: {why}");

    protected override void Dispose(bool disposing)
    {
        if (disposing) session?.Dispose();
        base.Dispose(disposing);
    }
}
