using System.CommandLine;
using SecureMnist.Security;

namespace SecureMnist.Cli;

/// <summary>Loads a model package the one way every verb does: verified, or explicitly and loudly not.</summary>
internal static class PackageLoading
{
    public static LoadedModel Load(ParseResult result, Option<string> model, Option<string> publicKey, Option<bool> allowUnsigned)
    {
        var path = result.GetValue(model)!;
        if (result.GetValue(allowUnsigned))
        {
            Ui.Warning($"loading {path} WITHOUT checking its signature (--allow-unsigned)");
            return ModelPackage.LoadUnsigned(path);
        }
        var verified = ModelPackage.Load(path, TrustedPublicKey.FromFile(result.GetValue(publicKey)!));
        Ui.Info($"{path}: signature by {verified.Manifest.SignerKeyId} verified; architecture {verified.Manifest.Architecture}");
        return verified;
    }
}
