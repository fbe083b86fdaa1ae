using SecureMnist.Modeling;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Security;

public sealed class ModelPackageTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    private string WritePackage(string name = "model", SigningKey? signer = null)
    {
        manual_seed(7);
        using var network = Architectures.Create(Architectures.LinearSoftmax);
        var path = Path.Combine(directory, name);
        ModelPackage.Write(path, Architectures.LinearSoftmax, network, new ModelPackage.Provenance("mnist", null, null, null), signer ?? key);
        return path;
    }

    [Fact]
    public void A_signed_package_verifies_and_loads_the_same_weights()
    {
        manual_seed(7);
        using var original = Architectures.Create(Architectures.LinearSoftmax);
        var path = WritePackage();
        using var loaded = ModelPackage.Load(path, key.PublicKey);
        Assert.Equal(PackageTrust.Signed, loaded.Trust);
        using var input = rand(5, 1, 28, 28);
        using var expected = original.call(input);
        using var actual = loaded.Network.call(input);
        Assert.True(expected.eq(actual).all().item<bool>());
        Assert.True(ModelPackage.Verify(path, key.PublicKey).Trusted);
    }

    [Theory]
    [InlineData(ModelPackage.WeightsFile)]
    [InlineData(ModelPackage.ManifestFile)]
    [InlineData(ModelPackage.SignatureFile)]
    public void Every_single_byte_change_is_refused(string file)
    {
        var path = WritePackage();
        var target = Path.Combine(path, file);
        var original = File.ReadAllBytes(target);
        var accepted = new List<int>();
        for (var position = 0; position < original.Length; position++)
        {
            var tampered = (byte[])original.Clone();
            tampered[position] ^= (byte)(1 << (position % 8));
            File.WriteAllBytes(target, tampered);
            if (ModelPackage.Verify(path, key.PublicKey).Trusted) accepted.Add(position);
        }
        File.WriteAllBytes(target, original);
        Assert.Empty(accepted);
        Assert.True(ModelPackage.Verify(path, key.PublicKey).Trusted);
    }

    [Fact]
    public void A_package_signed_by_another_key_is_refused()
    {
        using var stranger = SigningKey.Generate();
        var path = WritePackage(signer: stranger);
        var verification = ModelPackage.Verify(path, key.PublicKey);
        Assert.False(verification.Trusted);
        Assert.Contains($"signed by key {stranger.Id}, which is not the trusted key {key.Id}", verification.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_forged_signature_with_the_right_key_id_is_refused()
    {
        using var stranger = SigningKey.Generate();
        var path = WritePackage();
        var manifest = File.ReadAllBytes(Path.Combine(path, ModelPackage.ManifestFile));
        var forged = new SignatureEnvelope("Ed25519", key.Id, Convert.ToBase64String(stranger.Sign(manifest)));
        File.WriteAllBytes(Path.Combine(path, ModelPackage.SignatureFile), ManifestJson.Serialize(forged));
        Assert.Contains("signature does not verify", ModelPackage.Verify(path, key.PublicKey).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unsigned_package_loads_only_when_explicitly_allowed()
    {
        var path = WritePackage();
        File.Delete(Path.Combine(path, ModelPackage.SignatureFile));
        var error = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(path, key.PublicKey));
        Assert.Contains("unsigned", error.Message, StringComparison.Ordinal);
        using var loaded = ModelPackage.LoadUnsigned(path);
        Assert.Equal(PackageTrust.UnsignedAllowed, loaded.Trust);
        Assert.IsNotType<VerifiedModel>(loaded, exactMatch: false);
    }

    [Fact]
    public void Only_a_signature_check_can_make_a_verified_model_and_the_service_takes_nothing_else()
    {
        var library = typeof(VerifiedModel).Assembly;
        Assert.Empty(typeof(VerifiedModel).GetConstructors()); // no public constructor
        Assert.False(typeof(VerifiedModel).IsAssignableFrom(typeof(UnverifiedModel)));
        Assert.True(typeof(VerifiedModel).IsSealed);
        var makers = library.GetTypes().SelectMany(t => t.GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
            .Where(m => m.ReturnType == typeof(VerifiedModel)).ToList();
        var maker = Assert.Single(makers);
        Assert.Contains(maker.GetParameters(), p => p.ParameterType == typeof(TrustedPublicKey));
        var engine = Assert.Single(typeof(SecureMnist.Serving.InferenceEngine).GetConstructors());
        Assert.Equal(typeof(VerifiedModel), engine.GetParameters()[0].ParameterType);
        Assert.Throws<ModelPackageException>(() => ModelPackage.Load(WritePackage(), null!));
    }

    [Fact]
    public void Swapped_weights_with_a_consistent_unsigned_manifest_are_refused()
    {
        // An attacker replaces weights and rewrites the manifest digest to match: the signature catches it.
        var path = WritePackage();
        var weightsPath = Path.Combine(path, ModelPackage.WeightsFile);
        var weights = File.ReadAllBytes(weightsPath);
        weights[^1] ^= 0xFF;
        File.WriteAllBytes(weightsPath, weights);
        var manifest = ModelPackage.Inspect(path);
        manifest = manifest with { Weights = manifest.Weights with { Sha256 = ModelPackage.Sha256(weights) } };
        File.WriteAllBytes(Path.Combine(path, ModelPackage.ManifestFile), ManifestJson.Serialize(manifest));
        Assert.Contains("signature does not verify", ModelPackage.Verify(path, key.PublicKey).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Weights_that_do_not_fit_the_architecture_are_refused_before_loading()
    {
        var path = WritePackage();
        var manifest = ModelPackage.Inspect(path) with { Architecture = Architectures.SeedCnn };
        File.WriteAllBytes(Path.Combine(path, ModelPackage.ManifestFile), ManifestJson.Serialize(manifest));
        ModelPackage.Sign(path, key);
        var verification = ModelPackage.Verify(path, key.PublicKey);
        Assert.False(verification.Trusted);
        Assert.Contains("do not fit architecture seed-cnn", verification.Reason, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Keys_round_trip_through_pem_files_and_private_keys_are_owner_only()
    {
        var keyPath = Path.Combine(directory, "keys", "signing.key");
        key.Save(keyPath);
        using var reloaded = SigningKey.FromFile(keyPath);
        Assert.Equal(key.Id, reloaded.Id);
        Assert.Equal(key.Id, TrustedPublicKey.FromFile(Path.ChangeExtension(keyPath, ".pub")).Id);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyPath));
        Assert.Throws<ModelPackageException>(() => key.Save(keyPath));
    }

    [Fact]
    public void Seed_cnn_packages_hold_the_seeds_parameter_count()
    {
        manual_seed(1);
        using var network = Architectures.Create(Architectures.SeedCnn);
        var path = Path.Combine(directory, "seed");
        var manifest = ModelPackage.Write(path, Architectures.SeedCnn, network, new ModelPackage.Provenance(null, null, null, null), key);
        Assert.Equal(1_199_882, manifest.ParameterCount);
        Assert.Equal(["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"],
            manifest.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
    }
}
