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

    /// <summary>The largest document the library reads unless told otherwise.</summary>
    public const long DefaultMaxBytes = 64 << 20;

    /// <summary>
    /// Reads a whole file of at most <paramref name="maxBytes"/> bytes. The limit is checked on what is read, not only on the size the file
    /// system reports, so a file that grows while it is read cannot push past it.
    /// </summary>
    public static byte[] ReadBounded(string path, long maxBytes = DefaultMaxBytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found", path);
        using var stream = File.OpenRead(path);
        if (stream.Length > maxBytes) throw new InvalidDataException($"{path} is {stream.Length} bytes, over the {maxBytes} byte limit");
        var buffer = new MemoryStream((int)Math.Min(stream.Length, Array.MaxLength));
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + read > maxBytes) throw new InvalidDataException($"{path} grew past the {maxBytes} byte limit while it was read");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    /// <summary>Reads a document, turning malformed JSON into an <see cref="InvalidDataException"/> that names the file.</summary>
    public static T Load<T>(string path, long maxBytes = DefaultMaxBytes)
    {
        var bytes = ReadBounded(path, maxBytes);
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, Documents) ?? throw new InvalidDataException($"{path}: empty document");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid {typeof(T).Name}: {e.Message}");
        }
    }
}
