using SecureMnist.Fuzzing;

namespace SecureMnist.Tests.Fuzzing;

/// <summary>
/// Replays every past fuzzing finding (tests/fixtures/fuzz/TARGET/) and every seed (fuzz/corpus/TARGET/) through its
/// target: each must end in acceptance or the parser's own refusal, within a hang guard. A fix that is undone fails here.
/// </summary>
public sealed class FuzzRegressionTests : IDisposable
{
    private static readonly string Regressions = Path.Combine(TestPaths.RepositoryRoot, "tests", "fixtures", "fuzz");
    private static readonly string Corpus = Path.Combine(TestPaths.RepositoryRoot, "fuzz", "corpus");
    private readonly string scratch = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(scratch, recursive: true);

    public static TheoryData<string, string> RegressionFiles() => Files(Regressions);

    public static TheoryData<string, string> SeedFiles() => Files(Corpus);

    [Theory]
    [MemberData(nameof(RegressionFiles))]
    public void Every_past_finding_is_refused_cleanly(string target, string file)
    {
        var refusal = Replay(target, Path.Combine(Regressions, target, file));

        Assert.NotNull(refusal);
        Assert.NotEmpty(refusal);
    }

    [Theory]
    [MemberData(nameof(SeedFiles))]
    public void Valid_seeds_are_accepted_and_malicious_ones_refused(string target, string file)
    {
        var refusal = Replay(target, Path.Combine(Corpus, target, file));

        // The valid files the tool writes itself must be accepted; the malicious fixtures (and seeds named "-refused") must be refused.
        var malicious = file.Contains("os-system", StringComparison.Ordinal) || file.Contains("builtins", StringComparison.Ordinal)
            || file.Contains("subprocess", StringComparison.Ordinal) || file.Contains("legacy", StringComparison.Ordinal) || file.Contains("-refused", StringComparison.Ordinal);
        if (malicious) Assert.NotNull(refusal);
        else Assert.Null(refusal);
    }

    [Fact]
    public void Every_target_has_seeds_and_every_regression_folder_names_a_target()
    {
        var names = FuzzTargets.All.Select(t => t.Name).ToHashSet();
        foreach (var target in names) Assert.NotEmpty(Directory.GetFiles(Path.Combine(Corpus, target)));
        foreach (var folder in Directory.GetDirectories(Regressions)) Assert.Contains(Path.GetFileName(folder), names);
        foreach (var folder in Directory.GetDirectories(Corpus)) Assert.Contains(Path.GetFileName(folder), names);
    }

    [Fact]
    public void An_unknown_target_is_refused_with_the_list()
    {
        var error = Assert.Throws<ArgumentException>(() => FuzzTargets.Get("pickel"));
        Assert.Contains("pickle, pytorch-zip", error.Message);
    }

    private string? Replay(string target, string path)
    {
        var input = File.ReadAllBytes(path);
        var run = Task.Run(() => FuzzTargets.Get(target).Run(input, scratch));
        Assert.True(run.Wait(TimeSpan.FromSeconds(60)), $"{target} did not finish {path} within 60 s (a hang)");
        return run.Result;
    }

    private static TheoryData<string, string> Files(string root)
    {
        var data = new TheoryData<string, string>();
        foreach (var folder in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            foreach (var file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(folder), Path.GetFileName(file));
        return data;
    }
}
