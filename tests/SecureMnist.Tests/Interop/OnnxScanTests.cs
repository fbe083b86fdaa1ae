using SecureMnist.Interop;
using static SecureMnist.Tests.Interop.OnnxBytes;

namespace SecureMnist.Tests.Interop;

/// <summary>
/// scan on ONNX files: real exports from PyTorch 1.13 (tests/fixtures/onnx, make_fixtures.py) and hostile ones built here field by field
/// in protobuf's wire format.
/// </summary>
public sealed class OnnxScanTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures", "onnx");
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private ModelFileScan ScanBytes(byte[] bytes)
    {
        var path = Path.Combine(directory, Guid.NewGuid().ToString("N") + ".onnx");
        File.WriteAllBytes(path, bytes);
        return ModelFileScanner.Scan(path);
    }

    [Theory]
    [InlineData("seed-cnn.onnx", "Conv, Div, Flatten, Gemm, MaxPool, Relu, Sub", 8)]
    [InlineData("lenet5.onnx", "AveragePool, Constant, Conv, Flatten, Gemm, Pad, Tanh", 10)]
    public void Exports_from_pytorch_scan_as_safe_listing_their_operators_and_weights(string file, string operators, int initializers)
    {
        var scan = ModelFileScanner.Scan(Path.Combine(Fixtures, file));
        Assert.Equal(ModelFileKind.Onnx, scan.Kind);
        Assert.True(scan.SafeToLoad, scan.Verdict);
        foreach (var op in operators.Split(", ")) Assert.Contains(op, scan.Verdict, StringComparison.Ordinal);
        Assert.Equal(initializers, scan.Tensors.Count);
        var model = OnnxModelFile.Read(Path.Combine(Fixtures, file));
        Assert.Equal([("", 13L)], model.Opsets);
        Assert.Empty(model.Problems());
    }

    [Fact]
    public void A_custom_operator_domain_is_an_issue_naming_the_operator()
    {
        var scan = ScanBytes(Model([Node("Relu"), Node("RunShell", "com.example.evil")]));
        Assert.Equal(ModelFileKind.Onnx, scan.Kind);
        Assert.False(scan.SafeToLoad);
        Assert.Contains("custom operator RunShell from domain 'com.example.evil'", scan.Problems[0], StringComparison.Ordinal);
        Assert.Equal(ScanSeverity.Critical, scan.Severity); // a custom-op library is native code
        // Standard domains, spelt either way, are not issues.
        Assert.True(ScanBytes(Model([Node("Relu", "ai.onnx"), Node("LinearClassifier", "ai.onnx.ml")])).SafeToLoad);
    }

    [Theory]
    [InlineData("../../../etc/passwd", false)]
    [InlineData("/etc/passwd", false)]
    [InlineData("weights/../../secret.bin", false)]
    [InlineData("C:\\\\Windows\\\\system.ini", false)]
    [InlineData("", false)]
    [InlineData("weights.bin", true)]
    [InlineData("data/weights.bin", true)]
    public void External_data_outside_the_model_folder_is_an_issue(string location, bool safe)
    {
        var scan = ScanBytes(Model([Node("Relu")], [ExternalTensor(location)]));
        Assert.Equal(safe, scan.SafeToLoad);
        Assert.Equal(safe ? null : ScanSeverity.High, scan.Severity);
        if (!safe) Assert.Contains("outside the model's folder", scan.Problems[0], StringComparison.Ordinal);
        else Assert.Contains($"(external data: {location})", Assert.Single(scan.Tensors), StringComparison.Ordinal);
    }

    [Fact]
    public void Integers_are_read_as_protobuf_writes_them_whatever_their_bit_pattern()
    {
        // int64 fields are ten-byte two's complement: a dim of -1 is 2^64 - 1 on the wire, and an ir_version with the top bit set is negative.
        var tensor = Message(Int(1, ulong.MaxValue), Int(1, 5), Int(2, 0xFFFF_FFFF_0000_0001UL), Str(8, "w"));
        var read = Assert.Single(OnnxModelFile.Read(Model([Node("Relu")], [tensor])).Initializers);
        Assert.Equal([-1L, 5L], read.Dims);
        Assert.Equal(1, read.DataType); // an int32 keeps the low 32 bits
        var refusal = Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Read(Message(Int(1, 1UL << 63), Field(7, Message(Field(1, Node("Relu")))))));
        Assert.Contains("no ir_version", refusal.Message, StringComparison.Ordinal);
    }

    /// <summary>An If node whose then-branch holds another If, <paramref name="depth"/> graphs deep.</summary>
    private static byte[] NestedIf(int depth) =>
        depth == 0 ? Node("Relu") : Message(Str(4, "If"), Field(5, Message(Str(1, "then_branch"), Field(6, Message(Field(1, NestedIf(depth - 1)))))));

    [Fact]
    public void Malformed_and_oversized_files_are_refused_with_where_and_why()
    {
        var good = Model([Node("Relu")]);
        Assert.True(ScanBytes(good).SafeToLoad);
        // Truncated: the graph's length runs past the end.
        Assert.Contains("claims", ScanBytes(good[..^4]).Problems[0], StringComparison.Ordinal);
        // A length far beyond the file is refused before anything is allocated for it.
        Assert.Contains("claims 1,099,511,627,776 bytes", ScanBytes(Message(Int(1, 8), Str(2, "x"), [.. Varint((7 << 3) | 2), .. Varint(1UL << 40)])).Problems[0], StringComparison.Ordinal);
        // Groups (wire type 3) are not ONNX.
        Assert.Contains("wire type 3", ScanBytes(Message(Int(1, 8), Str(2, "x"), Varint((9 << 3) | 3))).Problems[0], StringComparison.Ordinal);
        // Subgraphs nest at most 16 deep: 15 Ifs inside the main graph pass, 16 do not.
        Assert.True(ScanBytes(Model([NestedIf(15)])).SafeToLoad);
        Assert.Contains("nested deeper than 16", ScanBytes(Model([NestedIf(16)])).Problems[0], StringComparison.Ordinal);
        // No graph, or two.
        Assert.Contains("no graph", ScanBytes(Message(Int(1, 8), Str(2, "x"))).Problems[0], StringComparison.Ordinal);
        Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Read(Message(good, Field(7, Message(Field(1, Node("Relu")))))));
        // Counts are capped by the limits.
        Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Read(Model([Node("Relu"), Node("Relu"), Node("Relu")]), new OnnxLimits(MaxNodes: 2)));
    }
}
