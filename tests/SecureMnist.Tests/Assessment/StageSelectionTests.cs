using SecureMnist.Assessment;

namespace SecureMnist.Tests.Assessment;

/// <summary>assess --stages: a run of some stages, and what it takes from the cache.</summary>
public sealed class StageSelectionTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private AssessmentResults Run(params string[] stages)
    {
        var options = new AssessmentOptions(AssessmentProfile.Quick, Path.Combine(directory, "out"), TestPaths.DataRoot, Path.Combine(directory, "signing.key"),
            Force: false, TestPaths.RepositoryRoot, stages);
        return new SecurityAssessment(options, (_, _, _, _, _) => throw new InvalidOperationException("the service stage was not selected")).Run();
    }

    [Fact]
    public void Force_with_stages_redoes_the_stages_named_not_the_ones_they_build_on()
    {
        AssessmentOptions Options(bool force, IReadOnlyList<string>? stages) => new(AssessmentProfile.Quick, directory, TestPaths.DataRoot, "key", force, null, stages);
        Assert.True(SecurityAssessment.Forces(Options(true, ["evasion"]), "evasion"));
        Assert.False(SecurityAssessment.Forces(Options(true, ["evasion"]), "baseline")); // twelve epochs in the full profile: reused
        Assert.True(SecurityAssessment.Forces(Options(true, null), "baseline"));
        Assert.False(SecurityAssessment.Forces(Options(false, ["evasion"]), "evasion"));
    }

    [Fact]
    public void Unselected_stages_come_from_the_cache_or_stay_out_of_the_report()
    {
        var first = Run("dependencies");
        Assert.Equal(["dependencies"], first.Stages.Select(s => s.Stage));
        Assert.True(first.Partial);
        Assert.Contains("dependencies.packages", first.Metrics.Keys);

        var second = Run("data");
        Assert.Equal(["data", "dependencies"], second.Stages.Select(s => s.Stage)); // dependencies: finished by the first run
        Assert.Equal(first.Stages.Single().FinishedUtc, second.Stages.Single(s => s.Stage == "dependencies").FinishedUtc);
        Assert.Contains("data.train_images", second.Metrics.Keys);
        Assert.DoesNotContain(second.Metrics.Keys, k => k.StartsWith("baseline.", StringComparison.Ordinal));
        Assert.True(second.Partial);
    }
}
