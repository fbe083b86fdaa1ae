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

/// <summary>The stages' declarations: names, dependencies and the metric keys the threat model cites.</summary>
public sealed class StageDeclarationTests
{
    [Fact]
    public void Every_evidence_key_the_threat_model_cites_is_declared_by_a_stage()
    {
        var cited = ThreatModel.Threats.SelectMany(t => t.Evidence.Select(e => (t.Id, Key: e))).ToList();
        Assert.NotEmpty(cited);
        foreach (var (threat, key) in cited)
            Assert.True(SecurityAssessment.Stages.Any(s => s.MetricKeys.Any(k => k.Name == key || k.Matches(key))), $"{threat} cites '{key}', which no stage declares");
    }

    [Fact]
    public void Stages_depend_only_on_earlier_stages_and_declare_distinct_keys()
    {
        var seen = new HashSet<string>();
        foreach (var stage in SecurityAssessment.Stages)
        {
            Assert.All(stage.DependsOn, d => Assert.Contains(d, seen));
            Assert.True(seen.Add(stage.Name), $"stage '{stage.Name}' twice");
        }
        var keys = SecurityAssessment.Stages.SelectMany(s => s.MetricKeys.Select(k => k.Name)).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
    }

    [Fact]
    public void A_defence_key_matches_one_defence_and_nothing_else()
    {
        var key = new MetricKey("defense_*.clean_accuracy");
        Assert.True(key.Matches("defense_pgd.clean_accuracy"));
        Assert.True(key.Matches("defense_*.clean_accuracy"));
        Assert.Equal("defense_fgsm_rs.clean_accuracy", key.For("fgsm-rs"));
        Assert.False(key.Matches("defense_pgd.clean_accuracy_x"));
        Assert.False(key.Matches("baseline.clean_accuracy"));
        Assert.False(key.Matches("defense_a.b.clean_accuracy"));
    }

    [Fact]
    public void A_cached_stage_of_other_code_is_not_reused()
    {
        var directory = TestPaths.NewScratchDirectory();
        try
        {
            var options = new AssessmentOptions(AssessmentProfile.Quick, directory, TestPaths.DataRoot, Path.Combine(directory, "signing.key"), Force: false, TestPaths.RepositoryRoot, ["data"]);
            var first = new SecurityAssessment(options, (_, _, _, _, _) => throw new InvalidOperationException()).Run().Stages.Single();
            Assert.Matches("^[0-9a-f]{32}$", SecurityAssessment.CodeFingerprint);
            // The same result recorded as computed by other code: its fingerprint no longer matches, so the stage runs again.
            var store = new StageStore(directory);
            store.Complete(first with { Fingerprint = StageStore.Fingerprint("data", new { code = "other" }) });
            var second = new SecurityAssessment(options, (_, _, _, _, _) => throw new InvalidOperationException()).Run().Stages.Single();
            Assert.Equal(first.Fingerprint, second.Fingerprint);
            Assert.NotEqual(first.FinishedUtc, second.FinishedUtc);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
