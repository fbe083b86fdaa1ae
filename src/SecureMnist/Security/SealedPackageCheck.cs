using System.Text.Json.Nodes;

namespace SecureMnist.Security;

/// <summary>One change made to a sealed package: whether verification refused it, and whether anything was decrypted first.</summary>
public sealed record SealTampering(string Change, bool Refused, bool Decrypted, string Reason);

/// <summary>A sealed copy's check: it opens with its KEK, and each tampering is refused before decryption.</summary>
public sealed record SealedPackageCheckResult(string KekId, bool Opens, IReadOnlyList<SealTampering> Tampered);

/// <summary>
/// Seals a signed package under a fresh key-encryption key (held in memory only) and tries what an attacker with write access to the
/// files would: a flipped byte of the ciphertext, another seal's wrapped data key, and opening with the wrong KEK.
/// </summary>
public static class SealedPackageCheck
{
    public static SealedPackageCheckResult Run(string package, SigningKey key, string workDirectory)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (Directory.Exists(workDirectory)) Directory.Delete(workDirectory, recursive: true);
        Directory.CreateDirectory(workDirectory);
        try
        {
            using var kek = KeyEncryptionKey.Generate();
            var sealedPath = Path.Combine(workDirectory, "sealed");
            ModelPackage.Seal(package, key.PublicKey, key, kek, sealedPath);
            var opens = ModelPackage.Verify(sealedPath, key.PublicKey, kek).Trusted;
            var tampered = new List<SealTampering>();
            SealTampering Try(string change, string path, KeyEncryptionKey with)
            {
                var before = WeightsSeal.Openings;
                var verification = ModelPackage.Verify(path, key.PublicKey, with);
                return new SealTampering(change, !verification.Trusted, WeightsSeal.Openings != before, verification.Reason);
            }

            var flipped = Copy(sealedPath, Path.Combine(workDirectory, "flipped"));
            var cipherFile = Path.Combine(flipped, ModelPackage.SealedWeightsFile);
            var bytes = File.ReadAllBytes(cipherFile);
            bytes[bytes.Length / 2] ^= 0x01;
            File.WriteAllBytes(cipherFile, bytes);
            tampered.Add(Try("flipped ciphertext byte", flipped, kek));

            var other = Path.Combine(workDirectory, "other");
            ModelPackage.Seal(package, key.PublicKey, key, kek, other);
            var otherSeal = ModelPackage.Inspect(other).Sealed!;
            var swapped = Copy(sealedPath, Path.Combine(workDirectory, "swapped"));
            var manifestPath = Path.Combine(swapped, ModelPackage.ManifestFile);
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
            manifest["sealed"]!["wrappedKey"] = otherSeal.WrappedKey;
            manifest["sealed"]!["wrapNonce"] = otherSeal.WrapNonce;
            File.WriteAllText(manifestPath, manifest.ToJsonString());
            tampered.Add(Try("swapped wrapped key", swapped, kek));

            using var wrong = KeyEncryptionKey.Generate();
            tampered.Add(Try("wrong KEK", sealedPath, wrong));
            return new SealedPackageCheckResult(kek.Id, opens, tampered);
        }
        finally
        {
            Directory.Delete(workDirectory, recursive: true);
        }
    }

    private static string Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        return to;
    }
}
