using System.CommandLine;
using SecureMnist.Security;

namespace SecureMnist.Cli;

/// <summary>Loads a model package the one way every verb does: verified, or explicitly and loudly not.</summary>
internal static class PackageLoading
{
    public static LoadedModel Load(ParseResult result, Option<string> model, Option<string> publicKey, Option<bool> allowUnsigned) =>
        Load(result, result.GetValue(model)!, publicKey, allowUnsigned);

    /// <summary>A package named by path (one of several in a list, or a second model such as a transfer source), under the verb's key options.</summary>
    public static LoadedModel Load(ParseResult result, string path, Option<string> publicKey, Option<bool> allowUnsigned)
    {
        // A sealed package opens with the key-encryption key in SECUREMNIST_KEK (serve and verify also take --kek).
        using var kek = KeyEncryptionKey.FromEnvironment();
        if (result.GetValue(allowUnsigned))
        {
            Ui.Warning($"loading {path} WITHOUT checking its signature (--allow-unsigned)");
            return ModelPackage.LoadUnsigned(path, kek);
        }
        var verified = ModelPackage.Load(path, TrustedPublicKey.FromFile(result.GetValue(publicKey)!), kek);
        Ui.Info($"{path}: signature by {verified.Manifest.SignerKeyId} verified; architecture {verified.Manifest.Architecture}");
        return verified;
    }
}
