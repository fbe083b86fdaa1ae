using System.Text.Json;
using SecureMnist.Tests.Interop;

namespace SecureMnist.Tests.Cli;

/// <summary>The exit-code table, errors as JSON under --json, plain validation messages and unwrapped redirected output, verb by verb.</summary>
public sealed class ExitCodeTests
{
    private static string Folded(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    [Theory]
    [InlineData(new[] { "train", "--epoch", "3" }, 2, "usage_error", "Unrecognized command or argument '--epoch'")]
    [InlineData(new[] { "train", "--epochs", "0", "--subset", "100", "--out", "never" }, 2, "input_error", "--epochs must be greater than 0 (got 0)")]
    [InlineData(new[] { "train", "--batch-size", "9000", "--subset", "100", "--out", "never" }, 2, "input_error", "--batch-size must be at most 8192 (got 9000)")]
    [InlineData(new[] { "evaluate", "--model", "models/missing" }, 2, "input_error", "not found")]
    [InlineData(new[] { "poison-bench", "--shard", "3/2", "--list" }, 2, "input_error", "shard 3 of 2 does not exist")]
    [InlineData(new[] { "membership", "--shard", "3/2" }, 2, "input_error", "shard 3 of 2 does not exist")]
    [InlineData(new[] { "membership", "--shadows", "0", "--shard", "1/2" }, 2, "input_error", "with --shadows 0 there are none")]
    [InlineData(new[] { "detect-poison", "--method", "spectre", "--reference", "mnist" }, 2, "input_error", "--reference is used by --method knn-union and knn-reference only, not spectre")]
    [InlineData(new[] { "detect-poison", "--method", "knn-consistency", "--reference-neighbours", "5" }, 2, "input_error", "--reference-neighbours and --reference-max-agreement set knn-union's reference vote")]
    [InlineData(new[] { "scan", "a.pt", "b.pt" }, 4, "usage_error", "Unrecognized command or argument 'b.pt'")]
    [InlineData(new[] { "scan", "no-such-file.pt" }, 2, "input_error", "no-such-file.pt")]
    public void Each_failure_has_its_exit_code_and_under_json_a_json_error(string[] arguments, int exitCode, string code, string message)
    {
        var directory = TestPaths.NewScratchDirectory();
        var (plainExit, _, plainError) = CliProcess.Run(directory, arguments);
        Assert.Equal(exitCode, plainExit);
        Assert.Contains(message, Folded(plainError), StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", plainError, StringComparison.Ordinal);
        Assert.DoesNotContain("Actual value was", plainError, StringComparison.Ordinal);

        var (jsonExit, output, _) = CliProcess.Run(directory, [.. arguments, "--json"]);
        Assert.Equal(exitCode, jsonExit);
        using var document = JsonDocument.Parse(output);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(exitCode, error.GetProperty("exitCode").GetInt32());
        Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory, "never")));
    }

    [Fact]
    public void Scan_exits_0_when_safe_1_on_issues_and_3_for_what_it_does_not_know()
    {
        var directory = TestPaths.NewScratchDirectory();
        var evil = Path.Combine(directory, "evil.pkl");
        File.WriteAllBytes(evil, new PickleWriter().Global("os", "system").Unicode("true").Raw("\x85").Raw("R").Stop().ToArray());
        var (evilExit, evilOutput, _) = CliProcess.Run(directory, "scan", evil);
        Assert.Equal(1, evilExit);
        Assert.Contains("os.system", evilOutput, StringComparison.Ordinal);

        var unknown = Path.Combine(directory, "notes.txt");
        File.WriteAllText(unknown, "not a model");
        Assert.Equal(3, CliProcess.Run(directory, "scan", unknown).ExitCode);

        var safe = Path.Combine(directory, "tensor.safetensors");
        File.WriteAllBytes(safe, SecureMnist.Security.Safetensors.Serialize([SecureMnist.Security.SafetensorsTensor.Float32("w", [2], [1f, 2f])]));
        Assert.Equal(0, CliProcess.Run(directory, "scan", safe).ExitCode);
    }

    [Fact]
    public void Scan_fails_on_findings_at_or_above_the_fail_on_severity()
    {
        var directory = TestPaths.NewScratchDirectory();
        var critical = Path.Combine(directory, "critical.pkl");
        File.WriteAllBytes(critical, new PickleWriter().Global("os", "system").Unicode("true").Raw("\x85").Raw("R").Stop().ToArray());
        // A global outside the allowlist that no list knows as harmful: medium.
        var medium = Path.Combine(directory, "medium.pkl");
        File.WriteAllBytes(medium, new PickleWriter().Global("collections", "Counter").Raw(")").Raw("R").Stop().ToArray());

        Assert.Equal(1, CliProcess.Run(directory, "scan", critical, "--fail-on", "critical").ExitCode);
        Assert.Equal(1, CliProcess.Run(directory, "scan", medium).ExitCode); // the default, low: any finding fails, as ModelScan
        Assert.Equal(1, CliProcess.Run(directory, "scan", medium, "--fail-on", "medium").ExitCode);
        var (passExit, passOutput, _) = CliProcess.Run(directory, "scan", medium, "--fail-on", "high");
        Assert.Equal(0, passExit);
        Assert.Contains("below --fail-on high", Folded(passOutput), StringComparison.Ordinal);
        var (jsonExit, jsonOutput, _) = CliProcess.Run(directory, "scan", critical, "--fail-on", "high", "--json");
        Assert.Equal(1, jsonExit);
        using (var document = JsonDocument.Parse(jsonOutput))
            Assert.Equal("critical", document.RootElement.GetProperty("severity").GetString()?.ToLowerInvariant());

        var (badExit, _, badError) = CliProcess.Run(directory, "scan", critical, "--fail-on", "severe");
        Assert.Equal(4, badExit);
        Assert.Contains("severe", badError, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_takes_onnx_and_infers_a_sequentials_layer_list_and_an_ambiguous_one_is_an_input_error()
    {
        var directory = TestPaths.NewScratchDirectory();
        var fixtures = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures");
        var key = Path.Combine(directory, "signing.key");
        Assert.Equal(0, CliProcess.Run(directory, "keys", "generate", "--out", key).ExitCode);

        var (onnxExit, onnxOutput, _) = CliProcess.Run(directory, "import", "--from-onnx", Path.Combine(fixtures, "onnx", "seed-cnn.onnx"), "--out", "onnx", "--key", key, "--json");
        Assert.Equal(0, onnxExit);
        using (var onnx = JsonDocument.Parse(onnxOutput))
            Assert.Equal("onnx", onnx.RootElement.GetProperty("manifest").GetProperty("architecture").GetString());

        var (inferExit, inferOutput, _) = CliProcess.Run(directory, "import", "--from-pytorch", Path.Combine(fixtures, "pytorch", "tanh-cnn-sequential.pth"), "--out", "tanh", "--key", key, "--json");
        Assert.Equal(0, inferExit);
        using (var inferred = JsonDocument.Parse(inferOutput))
        {
            Assert.StartsWith("it is not seed-cnn", inferred.RootElement.GetProperty("note").GetString(), StringComparison.Ordinal);
            var layers = inferred.RootElement.GetProperty("inferred").GetProperty("spec").GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("type").GetString()).ToList();
            Assert.Equal(["Conv2d", "Tanh", "AvgPool2d", "Conv2d", "Tanh", "AvgPool2d", "Flatten", "Linear"], layers);
        }

        var (ambiguousExit, ambiguousOutput, _) = CliProcess.Run(directory, "import", "--from-pytorch", Path.Combine(fixtures, "pytorch", "lenet5-sequential.pth"), "--arch-spec", "infer", "--out", "never", "--key", key, "--json");
        Assert.Equal(2, ambiguousExit);
        using (var ambiguous = JsonDocument.Parse(ambiguousOutput))
            Assert.Contains("cannot be told from the shapes", ambiguous.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory, "never")));
    }

    [Fact]
    public void Redirected_output_is_not_wrapped_at_80_columns()
    {
        var directory = Path.Combine(TestPaths.NewScratchDirectory(), new string('d', 60), new string('e', 60));
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, "notes.txt");
        File.WriteAllText(file, "not a model");
        var (_, output, _) = CliProcess.Run(directory, "scan", file);
        Assert.Contains(output.Split('\n'), line => line.Contains(file, StringComparison.Ordinal));
    }

    [Fact]
    public void Help_names_the_program_as_users_type_it()
    {
        var (exit, output, _) = CliProcess.Run(TestPaths.NewScratchDirectory(), "train", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("securemnist train [options]", output, StringComparison.Ordinal);
        Assert.DoesNotContain("SecureMnist.Cli", output, StringComparison.Ordinal);
    }
}
