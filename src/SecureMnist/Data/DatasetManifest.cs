using System.Reflection;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using SecureMnist.IO;

namespace SecureMnist.Data;

/// <summary>The expected SHA-256 of every file of a dataset.</summary>
public sealed record DatasetManifest(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("files")] IReadOnlyDictionary<string, string> Files)
{
    public const string FileName = "manifest.json";
    public static readonly string[] KnownNames = ["mnist", "fashion-mnist"];

    public static DatasetManifest Known(string name)
    {
        if (!KnownNames.Contains(name))
            throw new DatasetException($"unknown dataset '{name}'; known: {string.Join(", ", KnownNames)}, or give a folder path");
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"SecureMnist.Data.Manifests.{name}.json")
            ?? throw new InvalidOperationException($"embedded manifest for {name} is missing");
        return Parse(stream, $"embedded manifest '{name}'");
    }

    public static DatasetManifest Parse(Stream json, string origin)
    {
        try
        {
            var manifest = JsonSerializer.Deserialize(json, DataJsonContext.Default.DatasetManifest)
                ?? throw new DatasetException($"{origin}: empty manifest");
            if (manifest.Files is null || manifest.Files.Count == 0) throw new DatasetException($"{origin}: manifest lists no files");
            foreach (var (file, digest) in manifest.Files)
            {
                if (file.Contains('/') || file.Contains('\\') || file.StartsWith('.'))
                    throw new DatasetException($"{origin}: file name '{file}' must be a plain name in the dataset folder");
                if (digest.Length != 64 || !digest.All(Uri.IsHexDigit))
                    throw new DatasetException($"{origin}: digest of {file} is not a SHA-256 hex string");
            }
            return manifest;
        }
        catch (JsonException e)
        {
            throw new DatasetException($"{origin}: invalid JSON: {e.Message}");
        }
    }

    /// <summary>Writes this manifest as the folder's own manifest.json.</summary>
    public void Save(string directory) =>
        AtomicFile.WriteAllText(Path.Combine(directory, FileName), JsonSerializer.Serialize(this, DataJsonContext.Default.DatasetManifest));

    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>Checks every listed file; returns the first mismatch or missing file, or null when all match.</summary>
    public DatasetVerification Verify(string directory)
    {
        var checkedFiles = new List<string>();
        foreach (var (file, expected) in Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var path = Path.Combine(directory, file);
            if (!File.Exists(path))
                return new DatasetVerification(false, $"{file}: missing from {directory}", checkedFiles);
            var actual = Sha256Of(path);
            if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                return new DatasetVerification(false, $"{file}: SHA-256 mismatch: expected {expected}, found {actual}", checkedFiles);
            checkedFiles.Add(file);
        }
        return new DatasetVerification(true, $"{checkedFiles.Count} files match the {Name} manifest", checkedFiles);
    }
}

public sealed record DatasetVerification(bool Ok, string Message, IReadOnlyList<string> CheckedFiles);

/// <summary>A dataset that is missing, unverifiable or malformed; the message says what to do.</summary>
public sealed class DatasetException(string message) : Exception(message);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(DatasetManifest))]
internal sealed partial class DataJsonContext : JsonSerializerContext;
