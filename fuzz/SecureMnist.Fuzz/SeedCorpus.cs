using System.IO.Compression;
using System.Text;
using SecureMnist.Audit;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Serving;
using SkiaSharp;

namespace SecureMnist.Fuzz;

/// <summary>
/// Writes small valid inputs for the targets whose seeds the library's own writers make (run from the uninstrumented
/// build by fuzz/make-corpus; the pickle, zip and package seeds come from the PyTorch fixtures and the CLI).
/// </summary>
internal static class SeedCorpus
{
    public static async Task WriteAsync(string root)
    {
        var digit = Digit();

        var safetensors = Folder(root, "safetensors");
        await File.WriteAllBytesAsync(Path.Combine(safetensors, "two-tensors.safetensors"), Safetensors.Serialize(
            [SafetensorsTensor.Float32("fc.weight", [2, 3], [0.5f, -1, 2, 0, 1e-3f, 3]), new SafetensorsTensor("step", "I64", [1], new byte[8])],
            new Dictionary<string, string> { ["format"] = "pt" })).ConfigureAwait(false);

        var idx = Folder(root, "idx");
        var gz = Folder(root, "idx-gz");
        var pixels = digit.Select(v => (byte)Math.Round(v * 255)).ToArray();
        IdxWriter.WriteImages(Path.Combine(idx, "images-idx3-ubyte"), [.. pixels, .. pixels], 2, 28, 28);
        IdxWriter.WriteLabels(Path.Combine(idx, "labels-idx1-ubyte"), [7, 1]);
        IdxWriter.WriteFloatImages(Path.Combine(idx, "images-idx3-float"), digit, 1, 28, 28);
        foreach (var file in Directory.GetFiles(idx))
        {
            await using var output = File.Create(Path.Combine(gz, Path.GetFileName(file) + ".gz"));
            await using var zip = new GZipStream(output, CompressionLevel.SmallestSize);
            await zip.WriteAsync(await File.ReadAllBytesAsync(file).ConfigureAwait(false)).ConfigureAwait(false);
        }

        var image = Folder(root, "image");
        await File.WriteAllBytesAsync(Path.Combine(image, "digit-28.png"), Encode(digit, 28, 28, SKEncodedImageFormat.Png, alpha: false)).ConfigureAwait(false);
        await File.WriteAllBytesAsync(Path.Combine(image, "digit-28.jpg"), Encode(digit, 28, 28, SKEncodedImageFormat.Jpeg, alpha: false)).ConfigureAwait(false);
        await File.WriteAllBytesAsync(Path.Combine(image, "digit-56-alpha.png"), Encode(Upscale(digit), 56, 56, SKEncodedImageFormat.Png, alpha: true)).ConfigureAwait(false);

        var json = Folder(root, "json-body");
        var flat = string.Join(",", digit.Select(v => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)));
        var rows = string.Join(",", digit.Chunk(28).Select(r => "[" + string.Join(",", r.Select(v => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture))) + "]"));
        await File.WriteAllTextAsync(Path.Combine(json, "pixels.json"), $"{{\"pixels\": [{flat}]}}").ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(json, "rows.json"), $"{{\"pixels\": [{rows}]}}").ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(json, "batch.json"), $"{{\"items\": [{{\"pixels\": [{flat}]}}, {{\"pixels\": [1, 2]}}]}}").ConfigureAwait(false);

        var oip = Folder(root, "oip-body");
        await File.WriteAllTextAsync(Path.Combine(oip, "flat.json"),
            $"{{\"id\": \"42\", \"inputs\": [{{\"name\": \"input\", \"shape\": [1, 784], \"datatype\": \"FP32\", \"data\": [{flat}]}}], \"outputs\": [{{\"name\": \"label\"}}]}}").ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(oip, "nested.json"),
            $"{{\"inputs\": [{{\"name\": \"input\", \"shape\": [1, 1, 28, 28], \"datatype\": \"FP32\", \"parameters\": {{}}, \"data\": [[{rows}]]}}]}}").ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(oip, "spec-example-refused.json"),
            "{\"id\": \"42\", \"inputs\": [{\"name\": \"input0\", \"shape\": [2, 2], \"datatype\": \"UINT32\", \"data\": [1, 2, 3, 4]}, {\"name\": \"input1\", \"shape\": [3], \"datatype\": \"BOOL\", \"data\": [true]}], \"outputs\": [{\"name\": \"output0\"}]}").ConfigureAwait(false);

        var audit = Folder(root, "audit-log");
        var logDirectory = Path.Combine(Path.GetTempPath(), $"securemnist-seed-audit-{Environment.ProcessId}");
        using (var key = SigningKey.Generate())
        {
            await using (var log = AuditLog.Open(logDirectory, key, new AuditLogOptions(CheckpointEveryRecords: 2)))
            {
                var time = new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
                await log.AppendAsync(new AuditRecord(time, "r1", "me", new string('a', 64), new string('b', 64), AuditOutcome.Accepted, 7, 0.99, 1.5)).ConfigureAwait(false);
                await log.AppendAsync(new AuditRecord(time, "r2", null, null, null, AuditOutcome.Unauthorized, null, null, 0.1, "an API key is required")).ConfigureAwait(false);
                await log.AppendAsync(new AuditRecord(time, "r3", "me", null, null, AuditOutcome.Rejected, null, null, 0.2, "not a digit")).ConfigureAwait(false);
            }
        }
        File.Copy(Path.Combine(logDirectory, AuditLog.ActiveFile), Path.Combine(audit, AuditLog.ActiveFile), overwrite: true);
        File.Copy(Path.Combine(logDirectory, AuditCheckpoint.CheckpointsFile), Path.Combine(audit, AuditCheckpoint.CheckpointsFile), overwrite: true);
        Directory.Delete(logDirectory, recursive: true);

        var keys = Folder(root, "api-keys");
        var keyFile = Path.Combine(keys, "api-keys.json");
        File.Delete(keyFile);
        ApiKeyStore.Add(keyFile, "me", [ApiScopes.Predict, ApiScopes.Admin], labelOnly: false, requestsPerMinute: 120);
        ApiKeyStore.Add(keyFile, "label-only", [ApiScopes.Predict], labelOnly: true, requestsPerMinute: 30);
    }

    private static string Folder(string root, string target)
    {
        var folder = Path.Combine(root, target);
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>A drawn 7: a bar and a diagonal, white on black.</summary>
    private static float[] Digit()
    {
        var pixels = new float[28 * 28];
        for (var x = 7; x < 21; x++) pixels[(6 * 28) + x] = pixels[(7 * 28) + x] = 1;
        for (var y = 8; y < 23; y++) pixels[(y * 28) + 20 - ((y - 8) / 2)] = 0.8f;
        return pixels;
    }

    private static float[] Upscale(float[] digit) =>
        Enumerable.Range(0, 56 * 56).Select(i => digit[(i / 56 / 2 * 28) + (i % 56 / 2)]).ToArray();

    private static byte[] Encode(float[] gray, int width, int height, SKEncodedImageFormat format, bool alpha)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var v = (byte)Math.Round(gray[(y * width) + x] * 255);
                bitmap.SetPixel(x, y, new SKColor(v, v, v, alpha ? (byte)(v == 0 ? 0 : 255) : (byte)255));
            }
        }
        using var data = bitmap.Encode(format, 90);
        return data.ToArray();
    }
}
