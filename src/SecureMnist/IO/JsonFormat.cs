using System.Text.Json;
using System.Text.Json.Serialization;

namespace SecureMnist.IO;

/// <summary>JSON settings of the library's own documents (poison manifests, detection reports): camelCase, indented, enums as names.</summary>
public static class JsonFormat
{
    public static readonly JsonSerializerOptions Documents = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
    };

    public static void Save<T>(string path, T value) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(value, Documents));

    /// <summary>Reads a document, turning malformed JSON into an <see cref="InvalidDataException"/> that names the file.</summary>
    public static T Load<T>(string path, long maxBytes = 64 << 20)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found", path);
        var length = new FileInfo(path).Length;
        if (length > maxBytes) throw new InvalidDataException($"{path} is {length} bytes, over the {maxBytes} byte limit");
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllBytes(path), Documents) ?? throw new InvalidDataException($"{path}: empty document");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid {typeof(T).Name}: {e.Message}");
        }
    }
}
