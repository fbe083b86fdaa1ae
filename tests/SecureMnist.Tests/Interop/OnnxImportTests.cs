using SecureMnist.Attacks.Evasion;
using SecureMnist.Interop;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Interop;

/// <summary>
/// ONNX models as packages: the seeds' CNN exported by PyTorch 1.13 (tests/fixtures/onnx/seed-cnn.onnx) against the same weights imported
/// natively (tests/fixtures/pytorch/seed-cnn.pth), and models refused before anything is written.
/// </summary>
public sealed class OnnxImportTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures");
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    private string OnnxPackage()
    {
        var package = Path.Combine(directory, "onnx");
        var manifest = OnnxImport.Import(Path.Combine(Fixtures, "onnx", "seed-cnn.onnx"), package, key);
        Assert.Equal(("seed-cnn.onnx", "ONNX (protobuf)"), (manifest.ImportedFrom!.File, manifest.ImportedFrom.Format));
        return package;
    }

    private string NativePackage()
    {
        var package = Path.Combine(directory, "native");
        PyTorchImport.Import(Path.Combine(Fixtures, "pytorch", "seed-cnn.pth"), "seed-cnn", package, key);
        return package;
    }

    [Fact]
    public void An_onnx_export_predicts_as_the_native_package_of_the_same_weights_and_black_box_attacks_agree()
    {
        using var onnx = ModelPackage.Load(OnnxPackage(), key.PublicKey);
        using var native = ModelPackage.Load(NativePackage(), key.PublicKey);
        Assert.Equal(SecureMnist.Modeling.Architectures.Onnx, onnx.Manifest.Architecture);
        Assert.Equal(native.Manifest.ParameterCount, onnx.Manifest.ParameterCount);

        var test = TestPaths.Mnist().Test.Take(200);
        using var images = test.ImagesTensor();
        using (no_grad())
        {
            using var a = onnx.Network.call(images);
            using var b = native.Network.call(images);
            var worst = (a - b).abs().max().item<float>();
            Assert.True(worst <= 1e-4, $"largest logit difference {worst}");
            using var agree = a.argmax(1).eq(b.argmax(1)).all();
            Assert.True(agree.item<bool>());
        }

        // Square (score-based, no gradients) with the same seed on both: the same robust accuracy within a point.
        using var labels = test.LabelsTensor();
        var options = new SquareOptions(Epsilon: 0.3, Queries: 50, Seed: 1);
        double Robust(TorchSharp.torch.nn.Module<Tensor, Tensor> network)
        {
            using var classifier = new NetworkClassifier(network);
            using var adversarial = new Square(options).Generate(classifier, images.narrow(0, 0, 100), labels.narrow(0, 0, 100));
            using var predictions = classifier.Logits(adversarial).argmax(1);
            return predictions.eq(labels.narrow(0, 0, 100)).to(ScalarType.Float32).mean().item<float>();
        }
        Assert.InRange(Math.Abs(Robust(onnx.Network) - Robust(native.Network)), 0, 0.01);
    }

    [Fact]
    public void White_box_attacks_are_refused_on_an_onnx_model_and_a_changed_byte_is_refused_by_the_digest()
    {
        var package = OnnxPackage();
        using (var onnx = ModelPackage.Load(package, key.PublicKey))
        {
            using var image = zeros(1, 1, 28, 28).requires_grad_(true);
            var error = Assert.Throws<InvalidOperationException>(() => onnx.Network.call(image));
            Assert.Contains("use the black-box ones (square, hopskipjump)", error.Message, StringComparison.Ordinal);
        }
        var path = Path.Combine(package, ModelPackage.OnnxFile);
        var bytes = File.ReadAllBytes(path);
        bytes[^100] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<ModelPackageException>(() => ModelPackage.Load(package, key.PublicKey).Dispose());
    }

    [Fact]
    public void A_sealed_onnx_package_opens_in_memory_with_its_kek_only_and_predicts_as_before()
    {
        var package = OnnxPackage();
        var sealedPackage = Path.Combine(directory, "sealed");
        using var kek = KeyEncryptionKey.Generate();
        ModelPackage.Seal(package, key.PublicKey, key, kek, sealedPackage);
        Assert.False(File.Exists(Path.Combine(sealedPackage, ModelPackage.OnnxFile)));
        var plaintext = File.ReadAllBytes(Path.Combine(package, ModelPackage.OnnxFile));
        Assert.True(File.ReadAllBytes(Path.Combine(sealedPackage, ModelPackage.SealedWeightsFile)).AsSpan().IndexOf(plaintext.AsSpan(plaintext.Length / 2, 64)) < 0);

        var error = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(sealedPackage, key.PublicKey).Dispose());
        Assert.Contains("sealed", error.Message, StringComparison.OrdinalIgnoreCase);
        using var opened = ModelPackage.Load(sealedPackage, key.PublicKey, kek);
        using var plain = ModelPackage.Load(package, key.PublicKey);
        using var images = TestPaths.Mnist().Test.Take(32).ImagesTensor();
        using (no_grad())
        {
            using var a = opened.Network.call(images);
            using var b = plain.Network.call(images);
            Assert.True(a.equal(b).all().item<bool>(), "the sealed and the plain package give different logits");
        }
    }

    [Fact]
    public void Models_that_are_not_safe_standard_classifiers_are_refused_before_a_package_is_written()
    {
        // A graph with an operator from a custom domain: a custom-op library would have to run it.
        var custom = OnnxBytes.Model([OnnxBytes.Node("Relu"), OnnxBytes.Node("RunShell", "com.example.evil")]);
        var target = Path.Combine(directory, "refused");
        var error = Assert.Throws<OnnxFormatException>(() => ModelPackage.WriteOnnx(target, custom, new ModelPackage.Provenance(null, null, null, null), key));
        Assert.Contains("custom operator RunShell from domain 'com.example.evil'", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target));
        // Not ONNX at all.
        Assert.Throws<OnnxFormatException>(() => ModelPackage.WriteOnnx(target, [1, 2, 3], new ModelPackage.Provenance(null, null, null, null), key));
        Assert.False(Directory.Exists(target));
    }
}
