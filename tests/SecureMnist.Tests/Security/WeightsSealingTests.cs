using System.Text.Json.Nodes;
using SecureMnist.Modeling;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Security;

public sealed class WeightsSealingTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();
    private readonly KeyEncryptionKey kek = KeyEncryptionKey.Generate();

    public void Dispose()
    {
        key.Dispose();
        kek.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    private string SealedPackage(string name = "sealed", KeyEncryptionKey? with = null)
    {
        manual_seed(7);
        using var network = Architectures.Create(Architectures.LinearSoftmax);
        var plain = Path.Combine(directory, name + "-plain");
        ModelPackage.Write(plain, Architectures.LinearSoftmax, network, new ModelPackage.Provenance("mnist", null, null, null), key);
        var path = Path.Combine(directory, name);
        ModelPackage.Seal(plain, key.PublicKey, key, with ?? kek, path);
        return path;
    }

    private static byte[] PlainWeights(string sealedPath) => File.ReadAllBytes(Path.Combine(sealedPath + "-plain", ModelPackage.WeightsFile));

    [Fact]
    public void A_sealed_package_holds_no_plaintext_and_opens_to_the_same_network_with_its_kek()
    {
        var path = SealedPackage();
        Assert.Equal(new[] { ModelPackage.ManifestFile, ModelPackage.SealedWeightsFile, ModelPackage.SignatureFile }.Order(StringComparer.Ordinal),
            Directory.GetFiles(path).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal));
        // No 64-byte run of the plaintext weights appears in any file of the sealed package.
        var plaintext = PlainWeights(path);
        foreach (var file in Directory.GetFiles(path))
        {
            var bytes = File.ReadAllBytes(file);
            for (var offset = 0; offset + 64 <= plaintext.Length; offset += 4096)
                Assert.True(bytes.AsSpan().IndexOf(plaintext.AsSpan(offset, 64)) < 0, $"{Path.GetFileName(file)} holds plaintext weights at offset {offset}");
        }
        manual_seed(7);
        using var original = Architectures.Create(Architectures.LinearSoftmax);
        using var loaded = ModelPackage.Load(path, key.PublicKey, kek);
        using var input = rand(5, 1, 28, 28);
        Assert.True(original.call(input).eq(loaded.Network.call(input)).all().item<bool>());
        Assert.NotNull(loaded.Manifest.Sealed);
        Assert.Equal(kek.Id, loaded.Manifest.Sealed!.KekId);
    }

    [Fact]
    public void Without_the_kek_a_sealed_package_verifies_its_signature_says_it_is_sealed_and_does_not_load()
    {
        var path = SealedPackage();
        var verification = ModelPackage.Verify(path, key.PublicKey);
        Assert.True(verification.Trusted, verification.Reason);
        Assert.Contains("sealed", verification.Reason, StringComparison.Ordinal);
        Assert.Contains(kek.Id, verification.Reason, StringComparison.Ordinal);
        var before = WeightsSeal.Openings;
        var error = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(path, key.PublicKey));
        Assert.Contains("--kek", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, WeightsSeal.Openings);
        Assert.True(ModelPackage.Verify(path, key.PublicKey, kek).Trusted);
    }

    [Fact]
    public void A_flipped_byte_in_the_ciphertext_is_refused_before_decryption()
    {
        var path = SealedPackage();
        var file = Path.Combine(path, ModelPackage.SealedWeightsFile);
        var bytes = File.ReadAllBytes(file);
        var before = WeightsSeal.Openings;
        foreach (var position in new[] { 0, bytes.Length / 2, bytes.Length - 1 })
        {
            var tampered = (byte[])bytes.Clone();
            tampered[position] ^= 0x01;
            File.WriteAllBytes(file, tampered);
            var error = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(path, key.PublicKey, kek));
            Assert.Contains("does not match the manifest", error.Message, StringComparison.Ordinal);
            Assert.Contains("nothing was decrypted", error.Message, StringComparison.Ordinal);
            Assert.False(ModelPackage.Verify(path, key.PublicKey).Trusted);
            // Without the signature check, the digest in the manifest still stops it.
            Assert.Throws<ModelPackageException>(() => ModelPackage.LoadUnsigned(path, kek));
        }
        Assert.Equal(before, WeightsSeal.Openings);
    }

    [Fact]
    public void A_swapped_wrapped_key_is_refused_before_decryption()
    {
        var path = SealedPackage("a");
        var other = SealedPackage("b");
        var otherSeal = ModelPackage.Inspect(other).Sealed!;
        var manifestPath = Path.Combine(path, ModelPackage.ManifestFile);
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        manifest["sealed"]!["wrappedKey"] = otherSeal.WrappedKey;
        manifest["sealed"]!["wrapNonce"] = otherSeal.WrapNonce;
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        var before = WeightsSeal.Openings;
        // The signature covers the wrapped key ...
        var signed = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(path, key.PublicKey, kek));
        Assert.Contains("signature does not verify", signed.Message, StringComparison.Ordinal);
        // ... and, with no signature check, the wrap is bound to this ciphertext, so it does not open.
        var unsigned = Assert.Throws<ModelPackageException>(() => ModelPackage.LoadUnsigned(path, kek));
        Assert.Contains("wrapped data key does not open", unsigned.Message, StringComparison.Ordinal);
        Assert.Equal(before, WeightsSeal.Openings);
    }

    [Fact]
    public void A_wrong_kek_is_refused_by_its_id_before_decryption()
    {
        var path = SealedPackage();
        using var wrong = KeyEncryptionKey.Generate();
        var before = WeightsSeal.Openings;
        var error = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(path, key.PublicKey, wrong));
        Assert.Contains($"sealed with KEK id {kek.Id}", error.Message, StringComparison.Ordinal);
        Assert.Contains(wrong.Id, error.Message, StringComparison.Ordinal);
        Assert.Equal(before, WeightsSeal.Openings);
        Assert.False(ModelPackage.Verify(path, key.PublicKey, wrong).Trusted);
    }

    [Fact]
    public void Sealing_refuses_an_untrusted_or_already_sealed_package()
    {
        var path = SealedPackage();
        Assert.Contains("already sealed", Assert.Throws<ModelPackageException>(() => ModelPackage.Seal(path, key.PublicKey, key, kek)).Message, StringComparison.Ordinal);
        using var stranger = SigningKey.Generate();
        Assert.Contains("not the trusted key", Assert.Throws<ModelPackageException>(() => ModelPackage.Seal(path + "-plain", stranger.PublicKey, key, kek, Path.Combine(directory, "x"))).Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory, "x")));
    }

    [Fact]
    public void Kek_files_and_variables_are_parsed_strictly_and_saved_for_the_owner_only()
    {
        var path = Path.Combine(directory, "weights.kek");
        kek.Save(path);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using (var loaded = KeyEncryptionKey.Load(path)) Assert.Equal(kek.Id, loaded.Id);
        Assert.Throws<ModelPackageException>(() => kek.Save(path));
        Environment.SetEnvironmentVariable("SECUREMNIST_TEST_KEK", File.ReadAllText(path));
        try
        {
            using var fromEnvironment = KeyEncryptionKey.Load("env:SECUREMNIST_TEST_KEK");
            Assert.Equal(kek.Id, fromEnvironment.Id);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SECUREMNIST_TEST_KEK", null);
        }
        Assert.Contains("is not set", Assert.Throws<ModelPackageException>(() => KeyEncryptionKey.Load("env:SECUREMNIST_TEST_KEK")).Message, StringComparison.Ordinal);
        Assert.Contains("holds 16 bytes", Assert.Throws<ModelPackageException>(() => KeyEncryptionKey.Parse(Convert.ToBase64String(new byte[16]), "x")).Message, StringComparison.Ordinal);
        Assert.Contains("base64", Assert.Throws<ModelPackageException>(() => KeyEncryptionKey.Parse("not base64!", "x")).Message, StringComparison.Ordinal);
        Assert.Contains("not found", Assert.Throws<ModelPackageException>(() => KeyEncryptionKey.Load(Path.Combine(directory, "missing.kek"))).Message, StringComparison.Ordinal);
    }
}
