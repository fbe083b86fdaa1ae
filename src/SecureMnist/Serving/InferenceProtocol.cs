using System.Text.Json;

namespace SecureMnist.Serving;

/// <summary>An Open Inference Protocol (v2) inference request, parsed: the caller's id, one image per batch entry, the outputs asked for.</summary>
public sealed record InferenceRequest(string? Id, IReadOnlyList<float[]> Images, IReadOnlyList<string> Outputs);

/// <summary>A tensor as the protocol describes one in metadata.</summary>
public sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>
/// The model's side of the Open Inference Protocol v2 (KServe, Triton): one FP32 input tensor of shape [N,1,28,28], [N,28,28] or
/// [N,784], values in [0, 1]; four named outputs. Parsing is bounded by the body, never by what it claims: the shape is checked
/// against the batch cap before any data is read, and data beyond the shape is refused as soon as it is met.
/// </summary>
public static class InferenceProtocol
{
    public const string InputName = "input";
    public const string Probabilities = "probabilities";
    public const string Label = "label";
    public const string Confidence = "confidence";
    public const string Decision = "decision";

    /// <summary>Every output with its type and shape, in the order a response lists them.</summary>
    public static IReadOnlyList<TensorMetadata> OutputMetadata { get; } =
    [
        new(Label, "INT64", [-1]),
        new(Decision, "BYTES", [-1]),
        new(Confidence, "FP32", [-1]),
        new(Probabilities, "FP32", [-1, 10]),
    ];

    /// <summary>The names of <see cref="OutputMetadata"/>.</summary>
    public static IReadOnlyList<string> OutputNames { get; } = [.. OutputMetadata.Select(o => o.Name)];

    /// <summary>Outputs that carry scores: withheld from label-only keys.</summary>
    public static IReadOnlyList<string> ScoreOutputs { get; } = [Confidence, Probabilities];

    public static TensorMetadata InputMetadata { get; } = new(InputName, "FP32", [-1, 1, DigitImage.Side, DigitImage.Side]);

    private const string Accepted = "one FP32 tensor of shape [N,1,28,28], [N,28,28] or [N,784] with values in [0, 1]";
    private static readonly JsonDocumentOptions Parsing = new() { MaxDepth = 12 };

    /// <summary>Parses an inference request; bad input becomes <see cref="InputRejectedException"/>, a batch over <paramref name="maxItems"/> <see cref="BatchTooLargeException"/>.</summary>
    public static InferenceRequest Parse(byte[] body, int maxItems)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (!System.Text.Unicode.Utf8.IsValid(body)) throw new InputRejectedException("the body is not valid UTF-8");
        try
        {
            using var document = JsonDocument.Parse(body, Parsing);
            return Parse(document.RootElement, maxItems);
        }
        catch (JsonException e)
        {
            throw new InputRejectedException($"the body is not valid JSON: {e.Message}");
        }
    }

    private static InferenceRequest Parse(JsonElement root, int maxItems)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new InputRejectedException("the body must be a JSON inference request object with an \"inputs\" array");
        string? id = null;
        if (root.TryGetProperty("id", out var idElement))
            id = idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : throw new InputRejectedException("\"id\" must be a string");
        if (id is { Length: > 256 }) throw new InputRejectedException("\"id\" is longer than 256 characters");
        if (!root.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.Array)
            throw new InputRejectedException($"the request needs an \"inputs\" array with {Accepted}");
        if (inputs.GetArrayLength() != 1)
            throw new InputRejectedException($"this model takes {Accepted}; the request has {inputs.GetArrayLength()} inputs");
        var images = Images(inputs[0], maxItems);
        return new InferenceRequest(id, images, RequestedOutputs(root));
    }

    private static List<float[]> Images(JsonElement input, int maxItems)
    {
        if (input.ValueKind != JsonValueKind.Object) throw new InputRejectedException("each input must be an object with name, shape, datatype and data");
        var name = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : throw new InputRejectedException("the input needs a \"name\" string");
        if (!input.TryGetProperty("datatype", out var datatype) || datatype.ValueKind != JsonValueKind.String)
            throw new InputRejectedException($"input '{name}' needs a \"datatype\" string; this model takes FP32");
        if (datatype.GetString() != "FP32") throw new InputRejectedException($"input '{name}' has datatype {datatype.GetString()}; this model takes FP32");
        var batch = Batch(name, input, maxItems);
        if (!input.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
            throw new InputRejectedException($"input '{name}' needs a \"data\" array (flat, or nested as its shape)");
        var expected = batch * DigitImage.Pixels;
        var values = new List<double>(expected);
        Flatten(data, values, expected, name, depth: 0);
        if (values.Count != expected) throw new InputRejectedException($"input '{name}' has shape [{batch}, ...] and so {expected} values; its data holds {values.Count}");
        var images = new List<float[]>(batch);
        for (var i = 0; i < batch; i++)
        {
            try
            {
                images.Add(DigitImage.FromValues(values.GetRange(i * DigitImage.Pixels, DigitImage.Pixels)));
            }
            catch (InputRejectedException e)
            {
                throw new InputRejectedException($"input '{name}', image {i}: {e.Message}");
            }
        }
        return images;
    }

    /// <summary>N from the shape, which must be one of the accepted forms; checked against the cap before any data is read.</summary>
    private static int Batch(string name, JsonElement input, int maxItems)
    {
        if (!input.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array || shapeElement.GetArrayLength() is < 2 or > 4)
            throw new InputRejectedException($"input '{name}' needs a \"shape\": [N,1,28,28], [N,28,28] or [N,784]");
        var shape = new List<long>();
        foreach (var dimension in shapeElement.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out var value) || value < 0)
                throw new InputRejectedException($"input '{name}': shape dimensions must be non-negative integers");
            shape.Add(value);
        }
        var perImage = shape.Skip(1).ToList();
        if (!(perImage.SequenceEqual([1L, DigitImage.Side, DigitImage.Side]) || perImage.SequenceEqual([(long)DigitImage.Side, DigitImage.Side]) || perImage.SequenceEqual([(long)DigitImage.Pixels])))
            throw new InputRejectedException($"input '{name}' has shape [{string.Join(",", shape)}]; this model takes [N,1,28,28], [N,28,28] or [N,784]");
        if (shape[0] == 0) throw new InputRejectedException($"input '{name}' holds no images (N = 0)");
        if (shape[0] > maxItems) throw new BatchTooLargeException($"input '{name}' holds {shape[0]} images; at most {maxItems} are accepted per request");
        return (int)shape[0];
    }

    private static void Flatten(JsonElement array, List<double> values, int limit, string name, int depth)
    {
        if (depth > 4) throw new InputRejectedException($"input '{name}': data is nested deeper than its shape");
        foreach (var element in array.EnumerateArray())
        {
            if (element.ValueKind == JsonValueKind.Array)
            {
                Flatten(element, values, limit, name, depth + 1);
            }
            else
            {
                if (values.Count == limit) throw new InputRejectedException($"input '{name}' holds more values than its shape ({limit})");
                values.Add(element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var value) ? value
                    : throw new InputRejectedException($"input '{name}': data must be numbers; got {element.ValueKind.ToString().ToLowerInvariant()}"));
            }
        }
    }

    private static List<string> RequestedOutputs(JsonElement root)
    {
        if (!root.TryGetProperty("outputs", out var outputs)) return [.. OutputNames];
        if (outputs.ValueKind != JsonValueKind.Array) throw new InputRejectedException("\"outputs\" must be an array of {\"name\": ...}");
        var names = new List<string>();
        foreach (var output in outputs.EnumerateArray())
        {
            var name = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()! : throw new InputRejectedException("each requested output needs a \"name\" string");
            if (!OutputNames.Contains(name)) throw new InputRejectedException($"unknown output '{name}'; this model has {string.Join(", ", OutputNames)}");
            if (!names.Contains(name)) names.Add(name);
        }
        return names.Count == 0 ? [.. OutputNames] : names;
    }
}
