using System.CommandLine;
using SecureMnist.Data;

namespace SecureMnist.Cli;

/// <summary>Options shared by several verbs, declared once so their names and defaults stay the same everywhere.</summary>
internal static class CommonOptions
{
    public static readonly Option<string> DataRoot = new("--data-root")
    {
        Description = "Folder that holds installed datasets (NAME/ inside it): $SECUREMNIST_DATA if set; else ./data in the repository or where ./data exists; else $SECUREMNIST_HOME/data (default ~/.local/share/securemnist/data)",
        DefaultValueFactory = _ => ToolHome.DataRoot(),
        Recursive = true,
    };

    public static readonly Option<int> Threads = new("--threads")
    {
        Description = "Compute threads for libtorch (default: all cores; serve and bench serve leave one core to the web server and the audit writer)",
        DefaultValueFactory = _ => Environment.ProcessorCount,
        Recursive = true,
    };

    public static Option<string> Dataset() => new("--dataset")
    {
        Description = "Dataset name (mnist, fashion-mnist) or a folder with IDX files and a manifest",
        DefaultValueFactory = _ => "mnist",
    };

    public static Option<string> PublicKey() => new("--public-key")
    {
        Description = "Trusted Ed25519 public key (PEM) that model packages must be signed with",
        DefaultValueFactory = _ => "keys/signing.pub",
    };

    public static Option<bool> AllowUnsigned() => new("--allow-unsigned")
    {
        Description = "Load a package without checking its signature (prints a warning; never do this in production)",
    };

    public static Option<SecureMnist.Serving.InferencePrecision> Precision() => new("--precision")
    {
        Description = "Number format while serving: auto (bf16 on CPUs with AVX-512 BF16 or AMX-BF16, fp32 elsewhere), fp32 (as trained) or bf16 (bfloat16 weights and activations: several times faster convolutions where the CPU computes bfloat16 natively, emulated and slower elsewhere; the detector is calibrated in the same format; `bench precision` compares the two)",
        DefaultValueFactory = _ => SecureMnist.Serving.InferencePrecision.Auto,
    };

    public static Option<bool> Json() => new("--json") { Description = "Print the result as JSON on standard output" };

    public static Option<string> Model() => new("--model")
    {
        Description = "Model package folder (weights.safetensors, manifest.json, signature.json)",
        DefaultValueFactory = _ => "models/baseline",
    };
}
