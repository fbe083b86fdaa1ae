using System.Security.Cryptography;
using System.Text.Json;

namespace SecureMnist.Serving;

/// <summary>A batch that holds more items than the service accepts.</summary>
public sealed class BatchTooLargeException(string message) : Exception(message);

/// <summary>One item of a batch: the SHA-256 of its JSON text, and its pixels or why it was refused.</summary>
public sealed record BatchItem(string Sha256, float[]? Pixels, string? Error);

/// <summary>
/// Parses the service's JSON request bodies. Bad input becomes <see cref="InputRejectedException"/> (or
/// <see cref="BatchTooLargeException"/>) with a message for the caller; the work is linear in the body's size.
/// </summary>
public static class PredictRequest
{
    private static readonly JsonDocumentOptions Parsing = new() { MaxDepth = 8 };

    // JSON is UTF-8 (RFC 8259); System.Text.Json leaves invalid bytes inside strings to whoever reads them.
    private static JsonDocument Parse(byte[] body) =>
        System.Text.Unicode.Utf8.IsValid(body) ? JsonDocument.Parse(body, Parsing) : throw new InputRejectedException("the body is not valid UTF-8");

    /// <summary>Parses <c>{"pixels": [784 values]}</c> or <c>{"pixels": [[28 values] x 28]}</c>.</summary>
    public static float[] Pixels(byte[] body)
    {
        try
        {
            using var document = Parse(body);
            return Pixels(document.RootElement);
        }
        catch (JsonException e)
        {
            throw new InputRejectedException($"the body is not valid JSON: {e.Message}");
        }
    }

    private static float[] Pixels(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("pixels", out var pixels) || pixels.ValueKind != JsonValueKind.Array)
            throw new InputRejectedException("expected a JSON object with a \"pixels\" array of 784 values (or 28 rows of 28)");
        var values = new List<double>(DigitImage.Pixels);
        foreach (var element in pixels.EnumerateArray())
        {
            if (values.Count > DigitImage.Pixels) break;
            if (element.ValueKind == JsonValueKind.Array) foreach (var inner in element.EnumerateArray()) values.Add(Number(inner));
            else values.Add(Number(element));
        }
        return DigitImage.FromValues(values);
    }

    private static double Number(JsonElement element) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var value) ? value
            : throw new InputRejectedException($"pixel values must be numbers; got {element.ValueKind.ToString().ToLowerInvariant()}");

    /// <summary>Parses <c>{"items": [{"pixels": ...}, ...]}</c>; a bad item becomes an error for that item alone.</summary>
    public static IReadOnlyList<BatchItem> BatchItems(byte[] body, int maxItems)
    {
        try
        {
            using var document = Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
                throw new InputRejectedException("expected a JSON object with an \"items\" array");
            var count = items.GetArrayLength();
            if (count == 0) throw new InputRejectedException("the batch is empty");
            if (count > maxItems) throw new BatchTooLargeException($"the batch holds {count} items; at most {maxItems} are accepted");
            var result = new List<BatchItem>(count);
            foreach (var item in items.EnumerateArray())
            {
                var sha = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(item.GetRawText())));
                try
                {
                    result.Add(new BatchItem(sha, Pixels(item), null));
                }
                catch (InputRejectedException e)
                {
                    result.Add(new BatchItem(sha, null, e.Message));
                }
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new InputRejectedException($"the body is not valid JSON: {e.Message}");
        }
    }
}
