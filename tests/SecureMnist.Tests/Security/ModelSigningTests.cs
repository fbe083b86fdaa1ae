using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using SecureMnist.Modeling;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Security;

/// <summary>model.sig in the OpenSSF model-signing v1.0 layout: what it contains, and every change it catches.</summary>
public sealed class ModelSigningTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly string package;
    private readonly string privateKey;
    private readonly string publicKey;

    public ModelSigningTests()
    {
        manual_seed(3);
        using var network = Architectures.Create(Architectures.LinearSoftmax);
        using var key = SigningKey.Generate();
        package = Path.Combine(directory, "model");
        ModelPackage.Write(package, Architectures.LinearSoftmax, network, new ModelPackage.Provenance("mnist", null, null, null), key);
        (privateKey, publicKey) = ModelSigning.GenerateKey(Path.Combine(directory, "keys", "p256.key"));
        ModelSigning.Sign(package, privateKey);
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void The_bundle_has_the_model_signing_layout()
    {
        var bundle = JsonNode.Parse(File.ReadAllText(Path.Combine(package, ModelSigning.SignatureFile)))!;
        Assert.Equal("application/vnd.dev.sigstore.bundle.v0.3+json", (string?)bundle["mediaType"]);
        var envelope = bundle["dsseEnvelope"]!;
        Assert.Equal("application/vnd.in-toto+json", (string?)envelope["payloadType"]);
        var payload = Convert.FromBase64String((string)envelope["payload"]!);
        var statement = JsonNode.Parse(payload)!;
        Assert.Equal("https://in-toto.io/Statement/v1", (string?)statement["_type"]);
        Assert.Equal("https://model_signing/signature/v1.0", (string?)statement["predicateType"]);
        Assert.Equal("files", (string?)statement["predicate"]!["serialization"]!["method"]);

        var resources = statement["predicate"]!["resources"]!.AsArray();
        var names = resources.Select(r => (string)r!["name"]!).ToList();
        Assert.Equal(new[] { ModelPackage.ManifestFile, ModelPackage.SignatureFile, ModelPackage.WeightsFile }, names);
        foreach (var resource in resources)
        {
            Assert.Equal("sha256", (string?)resource!["algorithm"]);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(package, (string)resource["name"]!)))), (string?)resource["digest"]);
        }
        // The subject digest is SHA-256 over the resource digests' bytes, in order.
        var concatenated = resources.SelectMany(r => Convert.FromHexString((string)r!["digest"]!)).ToArray();
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(concatenated)), (string?)statement["subject"]![0]!["digest"]!["sha256"]);

        // ECDSA P-256 / SHA-256 over DSSE's pre-authentication encoding, checked here independently of the verifier.
        using var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(publicKey));
        var pae = Encoding.UTF8.GetBytes($"DSSEv1 28 application/vnd.in-toto+json {payload.Length} ").Concat(payload).ToArray();
        var signature = Convert.FromBase64String((string)envelope["signatures"]![0]!["sig"]!);
        Assert.True(key.VerifyData(pae, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
    }

    [Fact]
    public void A_signed_package_verifies()
    {
        var verification = ModelSigning.Verify(package, publicKey);
        Assert.True(verification.Trusted, verification.Reason);
        Assert.Equal(3, verification.Files.Count);
    }

    [Fact]
    public void A_changed_file_is_named()
    {
        var weights = Path.Combine(package, ModelPackage.WeightsFile);
        var bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 1;
        File.WriteAllBytes(weights, bytes);
        var verification = ModelSigning.Verify(package, publicKey);
        Assert.False(verification.Trusted);
        Assert.Contains($"{ModelPackage.WeightsFile} changed after signing", verification.Reason);
    }

    [Fact]
    public void Added_and_removed_files_are_caught()
    {
        File.WriteAllText(Path.Combine(package, "extra.py"), "import os");
        Assert.Contains("extra.py is not covered", ModelSigning.Verify(package, publicKey).Reason);
        File.Delete(Path.Combine(package, "extra.py"));
        File.Delete(Path.Combine(package, ModelPackage.SignatureFile));
        Assert.Contains($"{ModelPackage.SignatureFile} is missing", ModelSigning.Verify(package, publicKey).Reason);
    }

    [Fact]
    public void Another_key_and_an_edited_statement_are_refused()
    {
        var (_, otherPublic) = ModelSigning.GenerateKey(Path.Combine(directory, "keys", "other.key"));
        Assert.False(ModelSigning.Verify(package, otherPublic).Trusted);

        var path = Path.Combine(package, ModelSigning.SignatureFile);
        var bundle = JsonNode.Parse(File.ReadAllText(path))!;
        var statement = JsonNode.Parse(Convert.FromBase64String((string)bundle["dsseEnvelope"]!["payload"]!))!;
        statement["subject"]![0]!["name"] = "someone-else";
        bundle["dsseEnvelope"]!["payload"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(statement.ToJsonString()));
        File.WriteAllText(path, bundle.ToJsonString());
        var verification = ModelSigning.Verify(package, publicKey);
        Assert.False(verification.Trusted);
        Assert.Contains("does not verify", verification.Reason);
    }

    [Fact]
    public void An_ed25519_key_is_not_taken_for_a_p256_one()
    {
        using var ed25519 = SigningKey.Generate();
        var (_, edPublic) = ed25519.Save(Path.Combine(directory, "keys", "ed.key"));
        var verification = ModelSigning.Verify(package, edPublic);
        Assert.False(verification.Trusted);
        Assert.Contains("not an EC P-256 public key", verification.Reason);
    }
}
