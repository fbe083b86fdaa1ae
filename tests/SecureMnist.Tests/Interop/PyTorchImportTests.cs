using System.IO.Compression;
using System.Text;
using System.Text.Json;
using SecureMnist.Interop;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Interop;

/// <summary>
/// Import of PyTorch state_dicts. Benign files and real malicious pickles come from tests/fixtures/pytorch
/// (make_fixtures.py, PyTorch 1.13); the structural attacks are built here from a benign file.
/// </summary>
public sealed class PyTorchImportTests : IDisposable
{
    private const string Marker = "/tmp/securemnist-pickle-marker";
    private static readonly string Fixtures = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures", "pytorch");
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    [Theory]
    [InlineData("seed-cnn.pth")]
    [InlineData("linear.pth")]
    [InlineData("checkpoint-strided.pth")]
    [InlineData("seed-cnn-sequential.pth")]
    public void State_dicts_written_by_pytorch_import_and_predict_as_pytorch_does(string file)
    {
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "expected.json"))).RootElement.GetProperty("files").GetProperty(file);
        var package = Path.Combine(directory, "imported");
        var result = PyTorchImport.Import(Path.Combine(Fixtures, file), expected.GetProperty("architecture").GetString()!, package, key);

        Assert.NotNull(result.Manifest.ImportedFrom);
        Assert.Equal(64, result.Manifest.ImportedFrom!.Sha256.Length);
        Assert.Contains("torch._utils._rebuild_tensor_v2", result.Manifest.ImportedFrom.PickleGlobals);
        AssertPredictsAsPyTorch(package, expected);
    }

    [Theory]
    [InlineData("lenet5-sequential.pth")] // nn.Sequential with tanh and average pooling, raw pixels
    [InlineData("batchnorm-cnn.pth")] // BatchNorm in named sub-Sequentials (features.1.running_mean, ...), normalised inputs
    public void Networks_we_do_not_define_import_through_a_layer_list_and_predict_as_pytorch_does(string file)
    {
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "expected.json"))).RootElement.GetProperty("files").GetProperty(file);
        var spec = SecureMnist.Modeling.ArchitectureSpec.Load(Path.Combine(Fixtures, expected.GetProperty("spec").GetString()!));
        var package = Path.Combine(directory, "custom");
        var result = PyTorchImport.Import(Path.Combine(Fixtures, file), spec, package, key);

        Assert.Equal(SecureMnist.Modeling.Architectures.Custom, result.Manifest.Architecture);
        Assert.Equal(spec.Layers, result.Manifest.Spec!.Layers); // the signed manifest carries the layer list
        AssertPredictsAsPyTorch(package, expected);
    }

    [Theory]
    [InlineData("relu-cnn-sequential.pth", "(x - 0.1307) / 0.3081, (0) Conv2d(1, 8, kernel_size=5, padding=2), (1) ReLU(), (2) MaxPool2d(2), (3) Conv2d(8, 16, kernel_size=5), (4) ReLU(), (5) MaxPool2d(2), (6) Dropout(0.5), (7) Flatten(), (8) Linear(400, 32), (9) ReLU(), (10) Dropout(0.5), (11) Linear(32, 10)")]
    [InlineData("tanh-cnn-sequential.pth", "(0) Conv2d(1, 6, kernel_size=5, padding=2), (1) Tanh(), (2) AvgPool2d(2), (3) Conv2d(6, 12, kernel_size=5), (4) Tanh(), (5) AvgPool2d(2), (6) Flatten(), (7) Linear(300, 10)")]
    public void The_layer_list_of_a_trained_sequential_is_inferred_from_its_shapes_and_the_import_predicts_as_pytorch_does(string file, string layers)
    {
        // Trained for one epoch by make_fixtures.py trained: ReLU, max pooling and MNIST scaling; tanh, average pooling and raw pixels.
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "expected.json"))).RootElement.GetProperty("files").GetProperty(file);
        var package = Path.Combine(directory, "inferred");
        var result = PyTorchImport.ImportInferred(Path.Combine(Fixtures, file), TestPaths.Mnist().Test.Take(1000), package, key);

        var inference = Assert.IsType<SpecInferenceResult>(result.Inference);
        Assert.Equal(layers, inference.Spec.Describe());
        Assert.Equal(layers, result.Manifest.Spec!.Describe()); // signed with the package
        Assert.Contains("inferred from the nn.Sequential's shapes", result.Note, StringComparison.Ordinal);
        Assert.True(inference.Candidates.Count >= 12, $"{inference.Candidates.Count} readings weighed");
        Assert.True(inference.Candidates[0].Accuracy >= 0.9, $"best reading {inference.Candidates[0].Accuracy:P1}");
        AssertPredictsAsPyTorch(package, expected);

        // Without a layer list, a Sequential that is none of our architectures is inferred, and the note says why.
        var byDefault = PyTorchImport.Import(Path.Combine(Fixtures, file), "seed-cnn", Path.Combine(directory, "default"), key, inferWith: () => TestPaths.Mnist().Test.Take(1000));
        Assert.StartsWith("it is not seed-cnn", byDefault.Note, StringComparison.Ordinal);
        Assert.Equal(layers, byDefault.Manifest.Spec!.Describe());
    }

    [Fact]
    public void A_sequential_whose_readings_score_alike_is_refused_naming_them_and_non_sequential_names_are_not_guessed()
    {
        // LeNet-5 with untrained weights: every reading is near chance, so none can be told from the rest.
        var error = Assert.Throws<PyTorchFormatException>(() =>
            PyTorchImport.ImportInferred(Path.Combine(Fixtures, "lenet5-sequential.pth"), TestPaths.Mnist().Test.Take(300), Path.Combine(directory, "ambiguous"), key));
        Assert.Contains("cannot be told from the shapes", error.Message, StringComparison.Ordinal);
        Assert.Contains("(1) ", error.Message, StringComparison.Ordinal);
        Assert.Contains("--arch-spec FILE", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory, "ambiguous")));
        // The shapes still narrow it down: LeNet's 400 features after two 5x5 convolutions need "same" padding on the first and pooling twice.
        var structures = SpecInference.Candidates(PyTorchArchive.ReadStateDict(Path.Combine(Fixtures, "lenet5-sequential.pth")).Tensors);
        Assert.Contains("(0) Conv2d(1, 6, kernel_size=5, padding=2), (1) <activation>(), (2) <pool>(), (3) Conv2d(6, 16, kernel_size=5), (4) <activation>(), (5) <pool>(), (6) Flatten(), (7) Linear(400, 120), (8) <activation>(), (9) Linear(120, 84), (10) <activation>(), (11) Linear(84, 10)",
            structures.Select(s => s.Describe()));
        Assert.InRange(structures.Count, 1, 4);

        // A module with named children has no layer indices to count gaps with.
        var named = Assert.Throws<PyTorchFormatException>(() => SpecInference.Candidates(PyTorchArchive.ReadStateDict(Path.Combine(Fixtures, "batchnorm-cnn.pth")).Tensors));
        Assert.Contains("only for an nn.Sequential", named.Message, StringComparison.Ordinal);
    }

    /// <summary>The package's logits on the formula inputs against PyTorch's, recorded in expected.json, within 1e-5.</summary>
    private void AssertPredictsAsPyTorch(string package, JsonElement expected)
    {
        using var model = ModelPackage.Load(package, key.PublicKey);
        var logits = expected.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        using var inputs = FormulaInputs(logits.Length);
        using var noGrad = no_grad();
        using var output = model.Network.call(inputs);
        var actual = output.data<float>().ToArray();
        var worst = logits.SelectMany((row, i) => row.Select((v, j) => Math.Abs(v - actual[i * 10 + j]))).Max();
        Assert.True(worst <= 1e-5, $"largest difference from PyTorch's logits: {worst}");
    }

    [Fact]
    public void A_layer_list_that_misplaces_a_layer_of_the_sequential_is_refused_and_an_edited_spec_breaks_the_signature()
    {
        // LeNet's spec without its Tanh layers: the Sequential's weights at 3, 7, 9 and 11 no longer sit where the spec has them.
        var json = File.ReadAllText(Path.Combine(Fixtures, "lenet5.spec.json"));
        var shifted = SecureMnist.Modeling.ArchitectureSpec.Parse(json.Replace("""{"type": "Tanh"},""", "", StringComparison.Ordinal));
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(Path.Combine(Fixtures, "lenet5-sequential.pth"), shifted, Path.Combine(directory, "shifted"), key));
        Assert.Contains("needs its place in the spec", error.Message, StringComparison.Ordinal);

        // The spec is part of what is signed: swapping Tanh for ReLU in a signed manifest is refused.
        var package = Path.Combine(directory, "lenet");
        PyTorchImport.Import(Path.Combine(Fixtures, "lenet5-sequential.pth"), SecureMnist.Modeling.ArchitectureSpec.Parse(json), package, key);
        var manifestPath = Path.Combine(package, ModelPackage.ManifestFile);
        var manifest = File.ReadAllText(manifestPath);
        Assert.Contains("\"Tanh\"", manifest, StringComparison.Ordinal);
        File.WriteAllText(manifestPath, manifest.Replace("\"Tanh\"", "\"ReLU\"", StringComparison.Ordinal));
        Assert.Throws<ModelPackageException>(() => ModelPackage.Load(package, key.PublicKey).Dispose());
    }

    [Fact]
    public void An_nn_Sequential_is_read_as_the_architecture_its_weighted_layers_match_and_the_import_says_what_it_assumed()
    {
        var result = PyTorchImport.Import(Path.Combine(Fixtures, "seed-cnn-sequential.pth"), "seed-cnn", Path.Combine(directory, "sequential"), key);
        Assert.Equal(["0.bias", "0.weight", "10.bias", "10.weight", "2.bias", "2.weight", "7.bias", "7.weight"], result.SourceNames.Order(StringComparer.Ordinal));
        Assert.NotNull(result.Note);
        Assert.Contains("0 -> conv1, 2 -> conv2, 7 -> fc1, 10 -> fc2", result.Note, StringComparison.Ordinal);
        Assert.Contains("normalisation", result.Note, StringComparison.Ordinal);
        // A state_dict in our own names needs no reading and says nothing.
        Assert.Null(PyTorchImport.Import(Path.Combine(Fixtures, "seed-cnn.pth"), "seed-cnn", Path.Combine(directory, "named"), key).Note);
    }

    [Theory]
    [InlineData("linear", "has 4 layers with weights (indices 0, 2, 7, 10); linear has 1 (fc)")]
    [InlineData("small-cnn", "has 4 layers with weights (indices 0, 2, 7, 10); small-cnn has 7")]
    [InlineData("dp-cnn", "layer 0's weight has shape [32,1,3,3]; dp-cnn's")]
    public void An_nn_Sequential_that_does_not_fit_the_architecture_is_refused_naming_the_layer(string architecture, string message)
    {
        var package = Path.Combine(directory, "refused");
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(Path.Combine(Fixtures, "seed-cnn-sequential.pth"), architecture, package, key));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Contains("it fits seed-cnn (--arch seed-cnn)", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(package));
    }

    [Theory]
    [InlineData("os-system-global.pth", "posix.system")]
    [InlineData("os-system-stack-global.pth", "posix.system")]
    [InlineData("subprocess-popen.pth", "subprocess.Popen")]
    [InlineData("builtins-eval.pth", "__builtin__.eval")]
    [InlineData("builtins-exec.pth", "builtins.exec")]
    [InlineData("builtins-getattr-import.pth", "__builtin__.getattr")]
    public void Malicious_pickles_are_refused_naming_the_global_and_nothing_runs(string file, string global)
    {
        var variant = Path.GetFileNameWithoutExtension(file);
        File.Delete($"{Marker}-{variant}");
        var package = Path.Combine(directory, "imported");

        var error = Assert.Throws<UnsafePickleException>(() => PyTorchImport.Import(Path.Combine(Fixtures, file), "linear", package, key));

        Assert.Contains($"global {global} is not allowed", error.Message);
        Assert.Contains("at byte", error.Message);
        Assert.False(File.Exists($"{Marker}-{variant}"), "the payload ran");
        Assert.False(Directory.Exists(package));
        var scan = ModelFileScanner.Scan(Path.Combine(Fixtures, file));
        Assert.False(scan.SafeToLoad);
        Assert.Contains(scan.Globals, g => g.FullName == global && !g.Allowed);
    }

    public static TheoryData<string, string> StructuralAttacks() => new()
    {
        { "inst", "opcode INST" },
        { "obj", "opcode OBJ" },
        { "newobj", "opcode NEWOBJ" },
        { "build-on-global", "BUILD on torch.FloatStorage is not allowed" },
        { "reduce-on-storage-type", "REDUCE on torch.FloatStorage is not allowed" },
        { "text-persid", "opcode PERSID" },
        { "persistent-id-traversal", "is not a plain name" },
        { "persistent-id-numel-lie", "claims 1000000 elements" },
        { "tensor-outside-storage", "reaches element" },
        { "oversized-length", "over the 1048576 byte limit" },
        { "truncated", "truncated" },
        { "deep-nesting", "nested deeper than" },
    };

    [Theory]
    [MemberData(nameof(StructuralAttacks))]
    public void Malformed_pickles_are_refused_with_the_opcode_and_offset(string attack, string expectedMessage)
    {
        var file = WithPickle(attack, PickleFor(attack));
        var package = Path.Combine(directory, "imported");
        var error = Assert.ThrowsAny<Exception>(() => PyTorchImport.Import(file, "linear", package, key));
        Assert.True(error is UnsafePickleException or PyTorchFormatException, error.ToString());
        Assert.Contains(expectedMessage, error.Message);
        Assert.False(Directory.Exists(package));
    }

    [Fact]
    public void A_zip_bomb_is_refused_before_it_inflates()
    {
        var file = Path.Combine(directory, "bomb.pth");
        using (var zip = ZipFile.Open(file, ZipArchiveMode.Create))
        {
            CopyEntries(Path.Combine(Fixtures, "linear.pth"), zip, name => name.EndsWith("data/0", StringComparison.Ordinal));
            using var entry = zip.CreateEntry("linear/data/0", CompressionLevel.SmallestSize).Open();
            var zeros = new byte[1 << 20];
            for (var i = 0; i < 64; i++) entry.Write(zeros);
        }
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(file, "linear", Path.Combine(directory, "out"), key));
        Assert.Contains("zip bomb", error.Message);
    }

    [Theory]
    [InlineData("linear/../../escape.txt")]
    [InlineData("/etc/cron.d/evil")]
    [InlineData("linear\\..\\evil")]
    public void Path_traversal_in_entry_names_is_refused(string entryName)
    {
        var file = Path.Combine(directory, "traversal.pth");
        using (var zip = ZipFile.Open(file, ZipArchiveMode.Create))
        {
            CopyEntries(Path.Combine(Fixtures, "linear.pth"), zip, _ => false);
            using var writer = zip.CreateEntry(entryName).Open();
            writer.Write("x"u8);
        }
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(file, "linear", Path.Combine(directory, "out"), key));
        Assert.Contains("path traversal", error.Message);
        Assert.False(File.Exists(Path.Combine(directory, "..", "escape.txt")));
    }

    [Fact]
    public void The_legacy_format_is_refused_with_how_to_convert_it()
    {
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(Path.Combine(Fixtures, "legacy.pth"), "linear", Path.Combine(directory, "out"), key));
        Assert.Contains("legacy", error.Message);
        Assert.Contains("1.6", error.Message);
    }

    [Fact]
    public void A_state_dict_for_another_architecture_is_refused_naming_the_tensors()
    {
        var error = Assert.Throws<PyTorchFormatException>(() => PyTorchImport.Import(Path.Combine(Fixtures, "linear.pth"), "seed-cnn", Path.Combine(directory, "out"), key));
        Assert.Contains("tensor 'conv1.weight' is missing", error.Message);
        Assert.Contains("tensor 'fc.weight' is not part of the architecture", error.Message);
    }

    [Fact]
    public void Scan_tells_formats_apart_and_passes_only_safe_files()
    {
        var benign = ModelFileScanner.Scan(Path.Combine(Fixtures, "seed-cnn.pth"));
        Assert.True(benign.SafeToLoad, benign.Verdict);
        Assert.Equal(ModelFileKind.PyTorchZip, benign.Kind);
        Assert.Equal(8, benign.Tensors.Count);
        Assert.All(benign.Globals, g => Assert.True(g.Allowed));

        var legacy = ModelFileScanner.Scan(Path.Combine(Fixtures, "legacy.pth"));
        Assert.Equal(ModelFileKind.PyTorchLegacy, legacy.Kind);
        Assert.False(legacy.SafeToLoad);
        Assert.Contains(legacy.Globals, g => g.FullName == "collections.OrderedDict");

        var package = Path.Combine(directory, "imported");
        PyTorchImport.Import(Path.Combine(Fixtures, "linear.pth"), "linear", package, key);
        Assert.Equal(ModelFileKind.SecureMnistPackage, ModelFileScanner.Scan(package).Kind);
        var weights = ModelFileScanner.Scan(Path.Combine(package, ModelPackage.WeightsFile));
        Assert.Equal(ModelFileKind.Safetensors, weights.Kind);
        Assert.True(weights.SafeToLoad);

        var text = Path.Combine(directory, "notes.txt");
        File.WriteAllText(text, "not a model");
        Assert.Equal(ModelFileKind.Unknown, ModelFileScanner.Scan(text).Kind);
        Assert.False(ModelFileScanner.Scan(text).SafeToLoad);
    }

    /// <summary>x[i, p] = ((37 i + 11 p) mod 256) / 255, as make_fixtures.py computes it.</summary>
    private static Tensor FormulaInputs(int count)
    {
        var values = new float[count * 784];
        for (var i = 0; i < count; i++)
            for (var p = 0; p < 784; p++)
                values[i * 784 + p] = (37 * i + 11 * p) % 256 / 255f;
        return tensor(values, [count, 1, 28, 28]);
    }

    /// <summary>The benign linear.pth with its data.pkl replaced.</summary>
    private string WithPickle(string name, byte[] pickle)
    {
        var file = Path.Combine(directory, name + ".pth");
        using var zip = ZipFile.Open(file, ZipArchiveMode.Create);
        CopyEntries(Path.Combine(Fixtures, "linear.pth"), zip, entry => entry.EndsWith("data.pkl", StringComparison.Ordinal));
        using var writer = zip.CreateEntry("linear/data.pkl", CompressionLevel.NoCompression).Open();
        writer.Write(pickle);
        return file;
    }

    private static void CopyEntries(string source, ZipArchive target, Func<string, bool> skip)
    {
        using var original = ZipFile.OpenRead(source);
        foreach (var entry in original.Entries.Where(e => !skip(e.FullName)))
        {
            using var from = entry.Open();
            using var to = target.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
            from.CopyTo(to);
        }
    }

    private static byte[] PickleFor(string attack)
    {
        var p = new PickleWriter();
        switch (attack)
        {
            case "inst":
                p.Mark().Unicode("touch " + Marker).Raw("ios\nsystem\n").Stop();
                break;
            case "obj":
                p.Mark().Global("collections", "OrderedDict").Raw("o").Stop();
                break;
            case "newobj":
                p.Global("collections", "OrderedDict").Raw(")").Op(0x81).Stop();
                break;
            case "build-on-global":
                p.Global("torch", "FloatStorage").Raw("}").Raw("b").Stop();
                break;
            case "reduce-on-storage-type":
                p.Global("torch", "FloatStorage").Raw(")").Raw("R").Stop();
                break;
            case "text-persid":
                p.Raw("P0\n").Stop();
                break;
            case "persistent-id-traversal":
                p.Dict().Unicode("fc.weight").Tensor("../../../etc/passwd", 7850, [10, 784], [784, 1]).Raw("s").Stop();
                break;
            case "persistent-id-numel-lie":
                p.Dict().Unicode("fc.weight").Tensor("0", 1_000_000, [10, 784], [784, 1]).Raw("s").Stop();
                break;
            case "tensor-outside-storage":
                p.Dict().Unicode("fc.weight").Tensor("0", 7840, [10, 784], [785, 1]).Raw("s").Stop();
                break;
            case "oversized-length":
                p.Raw("X").Raw(BitConverter.GetBytes(0xFFFF_FFF0u)).Raw("abc").Stop();
                break;
            case "truncated":
                var original = File.ReadAllBytes(Path.Combine(Fixtures, "linear.pth"));
                using (var zip = new ZipArchive(new MemoryStream(original)))
                using (var stream = zip.GetEntry("linear/data.pkl")!.Open())
                {
                    var buffer = new MemoryStream();
                    stream.CopyTo(buffer);
                    return buffer.ToArray()[..(int)(buffer.Length / 2)];
                }
            case "deep-nesting":
                for (var i = 0; i < 100; i++) p.Raw("]");
                for (var i = 0; i < 99; i++) p.Raw("a");
                p.Stop();
                break;
            default:
                throw new ArgumentException(attack);
        }
        return p.ToArray();
    }
}
