using System.Text.Json;

namespace SecureMnist.Tests.Cli;

public sealed class CliTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void Train_killed_mid_run_resumes_and_finishes()
    {
        string[] train = ["train", "--subset", "3000", "--epochs", "3", "--out", "models/small", "--json"];
        using (var first = new CliProcess(directory, train))
        {
            // SIGKILL just after epoch 1's checkpoint, i.e. inside epoch 2.
            first.KillWhenErrorContains("epoch 1/3:", TimeSpan.FromMinutes(3));
        }
        Assert.False(Directory.Exists(Path.Combine(directory, "models", "small")));

        var (exitCode, output, error) = CliProcess.Run(directory, [.. train, "--resume"]);
        Assert.True(exitCode == 0, error);
        using var result = JsonDocument.Parse(output);
        var record = result.RootElement.GetProperty("record");
        Assert.Equal(1, record.GetProperty("resumes").GetInt32());
        Assert.Equal(3, record.GetProperty("epochs").GetArrayLength());
        Assert.True(result.RootElement.GetProperty("testAccuracy").GetDouble() > 0.9);

        var (verifyExit, verifyOutput, _) = CliProcess.Run(directory, "verify", "models/small");
        Assert.Equal(0, verifyExit);
        Assert.Contains("trusted", verifyOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tampered_package_is_refused_by_evaluate_and_verify()
    {
        var (trainExit, _, trainError) = CliProcess.Run(directory, "train", "--arch", "linear", "--subset", "500", "--epochs", "1", "--out", "models/tiny");
        Assert.True(trainExit == 0, trainError);
        var weights = Path.Combine(directory, "models", "tiny", "weights.safetensors");
        var bytes = File.ReadAllBytes(weights);
        bytes[^3] ^= 0x10;
        File.WriteAllBytes(weights, bytes);

        var (verifyExit, verifyOutput, _) = CliProcess.Run(directory, "verify", "models/tiny");
        Assert.Equal(1, verifyExit);
        Assert.Contains("does not match the manifest", verifyOutput, StringComparison.Ordinal);
        var (evaluateExit, _, evaluateError) = CliProcess.Run(directory, "evaluate", "--model", "models/tiny");
        Assert.Equal(2, evaluateExit); // loading a package that does not verify is an input error; verify's failed check above is 1
        Assert.Contains("error:", evaluateError, StringComparison.Ordinal);
    }

    [Fact]
    public void Attack_reports_the_worst_case_and_saves_examples_grid_and_curve()
    {
        var (trainExit, _, trainError) = CliProcess.Run(directory, "train", "--arch", "linear", "--subset", "2000", "--epochs", "1", "--out", "models/tiny");
        Assert.True(trainExit == 0, trainError);
        var (exitCode, output, error) = CliProcess.Run(directory, "attack", "--model", "models/tiny", "--attacks", "fgsm,pgd", "--steps", "5",
            "--subset", "100", "--curve", "0,0.1,0.3", "--curve-attacks", "fgsm,pgd", "--out", "out/attack", "--json");
        Assert.True(exitCode == 0, error);
        using var document = JsonDocument.Parse(output);
        var report = document.RootElement.GetProperty("report");
        Assert.Equal(100, report.GetProperty("images").GetInt32());
        Assert.True(report.GetProperty("robustAccuracy").GetDouble() <= report.GetProperty("cleanAccuracy").GetDouble());
        Assert.Equal(2, report.GetProperty("stages").GetArrayLength());
        // 3 eps x (fgsm, pgd, worst case); at eps 0 all three equal the clean accuracy.
        var curve = document.RootElement.GetProperty("curve").EnumerateArray().ToList();
        Assert.Equal(9, curve.Count);
        Assert.All(curve.Where(p => p.GetProperty("epsilon").GetDouble() == 0), p => Assert.Equal(report.GetProperty("cleanAccuracy").GetDouble(), p.GetProperty("accuracy").GetDouble()));
        foreach (var atEps in curve.GroupBy(p => p.GetProperty("epsilon").GetDouble()))
        {
            var worst = atEps.Single(p => p.GetProperty("attack").GetString() == "worst case").GetProperty("accuracy").GetDouble();
            Assert.All(atEps, p => Assert.True(worst <= p.GetProperty("accuracy").GetDouble()));
        }
        foreach (var file in new[] { "report.json", "grid.png", "curve.png", "curve.json", "adversarial/images-idx3-float", "adversarial/labels-idx1-ubyte", "adversarial/adversarial.json" })
            Assert.True(File.Exists(Path.Combine(directory, "out", "attack", file)), file);
        var interval = report.GetProperty("robustInterval95");
        Assert.InRange(report.GetProperty("robustAccuracy").GetDouble(), interval.GetProperty("low").GetDouble(), interval.GetProperty("high").GetDouble());

        // The same 100 images split in two ranges under FGSM, joined with the first run per input by attack combine.
        foreach (var (range, folder) in new[] { ("0:60", "out/fgsm-a"), ("60:100", "out/fgsm-b") })
        {
            var (rangeExit, rangeOutput, rangeError) = CliProcess.Run(directory, "attack", "--model", "models/tiny", "--attacks", "fgsm", "--eps", "0.3",
                "--range", range, "--seed", "7", "--out", folder, "--json");
            Assert.True(rangeExit == 0, rangeError);
            using var ranged = JsonDocument.Parse(rangeOutput);
            Assert.Equal(range, $"{ranged.RootElement.GetProperty("inputs").GetProperty("start").GetInt32()}:{ranged.RootElement.GetProperty("inputs").GetProperty("end").GetInt32()}");
        }
        var (combineExit, combineOutput, combineError) = CliProcess.Run(directory, "attack", "combine", "out/attack", "out/fgsm-a", "out/fgsm-b", "--out", "out/combined.json", "--json");
        Assert.True(combineExit == 0, combineError);
        using var combined = JsonDocument.Parse(combineOutput);
        bool[] Robust(string folder)
        {
            var labels = File.ReadAllBytes(Path.Combine(directory, folder, "adversarial", "labels-idx1-ubyte"))[8..];
            var predictions = File.ReadAllBytes(Path.Combine(directory, folder, "adversarial", "predictions-idx1-ubyte"))[8..];
            return labels.Select((label, i) => predictions[i] == label).ToArray();
        }
        var both = Robust("out/attack");
        var fgsm = Robust("out/fgsm-a").Concat(Robust("out/fgsm-b")).ToArray();
        var expected = both.Where((robust, i) => robust && fgsm[i]).Count();
        Assert.Equal(100, combined.RootElement.GetProperty("images").GetInt32());
        Assert.Equal(expected, combined.RootElement.GetProperty("robust").GetInt32());
        Assert.True(expected <= Math.Min(both.Count(r => r), fgsm.Count(r => r)));
        Assert.Equal(["0:100"], combined.RootElement.GetProperty("coverage").EnumerateArray().Single().GetProperty("ranges").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal(["100:10000"], combined.RootElement.GetProperty("uncovered").EnumerateArray().Select(r => r.GetString()));
        Assert.Contains("no run attacked 9900 of the 10000 test images", combined.RootElement.GetProperty("caveat").GetString(), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(directory, "out", "combined.json")));

        // A run on another threat model does not join.
        var (otherExit, _, otherError) = CliProcess.Run(directory, "attack", "--model", "models/tiny", "--attacks", "fgsm", "--eps", "0.1", "--subset", "10", "--out", "out/fgsm-01");
        Assert.True(otherExit == 0, otherError);
        var (refusedExit, _, refusedError) = CliProcess.Run(directory, "attack", "combine", "out/attack", "out/fgsm-01");
        Assert.Equal(2, refusedExit);
        Assert.Contains("threat models", refusedError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("attack --attacks fgsm,deepfool", "unknown attack 'deepfool'")]
    [InlineData("attack --attacks pgd --restarts 0", "--restarts must be greater than 0 (got 0)")]
    [InlineData("attack --curve 0,2", "not an eps in [0, 1]")]
    [InlineData("attack --attacks pgd,cw", "mix threat models")]
    [InlineData("attack --attacks square --square-queries 0", "square queries")]
    [InlineData("attack --range 5:2", "--range: END must be greater than START")]
    [InlineData("attack --range 0:10 --subset 5", "give one of them")]
    [InlineData("attack --subset 0", "--subset must be at least 1")]
    [InlineData("attack combine no-such-run", "not an attack run")]
    [InlineData("robustness-checks --long-steps 50", "long run")]
    [InlineData("input-checks --adaptive-steps -1", "--adaptive-steps")]
    [InlineData("input-checks --uncertainty ensemble", "needs the other members")]
    [InlineData("input-checks --uncertainty mc-dropout --mc-samples 1", "--mc-samples must be 2 to 1000")]
    [InlineData("input-checks --ensemble models/b", "--ensemble needs --uncertainty ensemble")]
    [InlineData("serve --max-batch 0 --print-config", "Service:MaxBatchItems")]
    [InlineData("bench precision --tolerance -1", "--tolerance is in points")]
    [InlineData("bench precision --subset 0", "--subset must be at least 1")]
    [InlineData("seal models/baseline", "seal needs a key-encryption key")]
    [InlineData("seal models/baseline --kek missing.kek", "missing.kek not found")]
    [InlineData("extract --target models/baseline --budget 2000,500", "distinct and ascending")]
    [InlineData("extract --target models/baseline --budget 500,x", "'x' is not a whole number")]
    [InlineData("extract --target http://127.0.0.1:9", "needs --reference")]
    [InlineData("train --epochs 0", "--epochs must be greater than 0 (got 0)")]
    [InlineData("train --optimizer rmsprop", "rmsprop")]
    [InlineData("evaluate --model does-not-exist --public-key missing.pub", "missing.pub")]
    [InlineData("data verify no-such-folder", "neither a known dataset")]
    public void Bad_input_gets_a_message_and_a_non_zero_exit(string arguments, string expected)
    {
        var (exitCode, output, error) = CliProcess.Run(directory, arguments.Split(' '));
        Assert.Equal(2, exitCode); // a usage or input error (ExitCodes)
        Assert.Contains(expected, output + error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }
}
