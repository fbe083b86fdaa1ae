using System.Security.Cryptography;
using SecureMnist.Security;

namespace SecureMnist.Interop;

/// <summary>
/// Turns an ONNX file into a signed package that keeps the file as it is (<see cref="ModelPackage.OnnxFile"/>): its size is checked
/// before it is read, its SHA-256 becomes the import's provenance, and <see cref="ModelPackage.WriteOnnx"/> refuses it, before anything is
/// written, unless our reader finds only standard operators and weights inside the file and ONNX Runtime loads it as a classifier of
/// 28x28 images.
/// </summary>
public static class OnnxImport
{
    public static ModelManifest Import(string onnxFile, string packageDirectory, SigningKey key, OnnxLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(onnxFile);
        ArgumentNullException.ThrowIfNull(key);
        limits ??= new OnnxLimits();
        if (!File.Exists(onnxFile)) throw new FileNotFoundException($"{onnxFile} not found", onnxFile);
        var length = new FileInfo(onnxFile).Length;
        if (length > limits.MaxFileBytes) throw new OnnxFormatException($"{onnxFile} is {length:N0} bytes, over the {limits.MaxFileBytes:N0} byte limit");
        var bytes = File.ReadAllBytes(onnxFile);
        var source = new ImportSource(Path.GetFileName(onnxFile), Convert.ToHexStringLower(SHA256.HashData(bytes)), ModelFileKinds.Describe(ModelFileKind.Onnx), []);
        return ModelPackage.WriteOnnx(packageDirectory, bytes, new ModelPackage.Provenance(null, null, null, null, source), key);
    }
}
