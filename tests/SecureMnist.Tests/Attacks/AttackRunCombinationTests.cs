using SecureMnist.Attacks.Evasion;

namespace SecureMnist.Tests.Attacks;

public sealed class AttackRunCombinationTests
{
    private static readonly ThreatModel LInf03 = new("L-inf", 0.3);
    private const string Model = "aa11";
    private const string TestSet = "cafe";

    private static SavedAttackRun Run(string directory, int start, bool[] robust, string[] attacks, byte[]? labels = null, string model = Model,
        ThreatModel? threat = null, string testSet = TestSet, int testImages = 10) =>
        new(directory, model, threat ?? LInf03, new AttackedInputs("mnist", testImages, testSet, start, start + robust.Length), attacks,
            labels ?? robust.Select((_, i) => (byte)((start + i) % 10)).ToArray(), robust);

    [Fact]
    public void Ranges_that_split_the_test_set_join_into_one_figure()
    {
        var first = Run("a", 0, [true, false, true, true, true], ["apgd-ce", "apgd-t"]);
        var second = Run("b", 5, [true, true, false, false, true], ["apgd-ce", "apgd-t"]);
        var combined = AttackRunCombination.Combine([first, second]);
        Assert.Equal(10, combined.Images);
        Assert.Equal(7, combined.Robust);
        Assert.Equal(0.7, combined.RobustAccuracy, 12);
        Assert.True(combined.Uniform);
        var group = Assert.Single(combined.Coverage);
        Assert.Equal(["apgd-ce", "apgd-t"], group.Attacks);
        Assert.Equal(["0:10"], group.Ranges);
        Assert.InRange(0.7, combined.RobustInterval95.Low, combined.RobustInterval95.High);
    }

    [Fact]
    public void Attacks_that_break_disjoint_inputs_together_break_both_sets()
    {
        // The white-box run breaks inputs 1 and 2; Square, run later on the first 6 only, breaks 4 and 5. The worst case loses all four.
        var whiteBox = Run("white", 0, [true, false, false, true, true, true, true, true, true, true], ["apgd-ce"]);
        var square = Run("square", 0, [true, true, true, true, false, false], ["square"]);
        var combined = AttackRunCombination.Combine([whiteBox, square]);
        Assert.Equal(6, combined.Robust);
        Assert.False(combined.Uniform);
        Assert.Empty(combined.Uncovered);
        Assert.Equal(2, combined.Coverage.Count);
        var both = combined.Coverage.Single(g => g.Attacks.Count == 2);
        Assert.Equal(["apgd-ce", "square"], both.Attacks);
        Assert.Equal(["0:6"], both.Ranges);
        Assert.Equal(2, both.Robust);
        var whiteOnly = combined.Coverage.Single(g => g.Attacks.Count == 1);
        Assert.Equal(["6:10"], whiteOnly.Ranges);
        Assert.Equal(4, whiteOnly.Robust);
        // Neither run's own accuracy is the worst case: 80% and 66.7% against 60%.
        Assert.True(combined.RobustAccuracy < Math.Min(0.8, 4.0 / 6));
    }

    [Fact]
    public void Test_images_no_run_attacked_are_named_and_not_counted()
    {
        var combined = AttackRunCombination.Combine([Run("a", 0, [true, true], ["pgd"]), Run("b", 5, [false, true, true], ["pgd"])]);
        Assert.Equal(5, combined.Images);
        Assert.Equal(4, combined.Robust);
        Assert.Equal(["2:5", "8:10"], combined.Uncovered);
        Assert.False(combined.Uniform);
        Assert.Equal("not one standard over the whole test set: no run attacked 5 of the 10 test images", combined.Caveat);
    }

    [Fact]
    public void The_work_is_bounded_by_the_inputs_attacked_not_by_the_test_set_size_a_report_claims()
    {
        var claimed = int.MaxValue - 1;
        var combined = AttackRunCombination.Combine([Run("a", 5, [true, false], ["pgd"], testImages: claimed)]);
        Assert.Equal(2, combined.Images);
        Assert.Equal(["0:5", $"7:{claimed}"], combined.Uncovered);
    }

    [Fact]
    public void The_caveat_names_every_reason_and_is_absent_for_one_standard()
    {
        Assert.Null(AttackRunCombination.Combine([Run("a", 0, new bool[10], ["pgd"])]).Caveat);
        var mixed = AttackRunCombination.Combine([Run("a", 0, new bool[6], ["pgd"]), Run("b", 0, new bool[3], ["square"])]);
        Assert.Equal("not one standard over the whole test set: different attacks cover different images; no run attacked 4 of the 10 test images", mixed.Caveat);
    }

    [Fact]
    public void A_run_against_a_service_or_from_an_older_version_is_refused_with_its_own_reason()
    {
        var root = Directory.CreateTempSubdirectory("combine-load-");
        try
        {
            var remote = Path.Combine(root.FullName, "remote");
            Directory.CreateDirectory(remote);
            File.WriteAllText(Path.Combine(remote, SavedAttackRun.ReportFile), """{"target":"http://127.0.0.1:8080/","dataset":"mnist","images":100}""");
            Assert.Contains("attacked a service", Assert.Throws<InvalidDataException>(() => SavedAttackRun.Load(remote)).Message, StringComparison.Ordinal);

            var old = Path.Combine(root.FullName, "old");
            Directory.CreateDirectory(old);
            File.WriteAllText(Path.Combine(old, SavedAttackRun.ReportFile), """{"model":"m","dataset":"mnist","images":100,"attacks":["pgd"]}""");
            Assert.Contains("did not record which inputs", Assert.Throws<InvalidDataException>(() => SavedAttackRun.Load(old)).Message, StringComparison.Ordinal);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public void Runs_on_other_models_test_sets_or_threat_models_are_refused()
    {
        var baseRun = Run("a", 0, [true, true], ["pgd"]);
        Assert.Contains("another model", Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([baseRun, Run("b", 2, [true], ["pgd"], model: "bb22")])).Message, StringComparison.Ordinal);
        Assert.Contains("another test set", Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([baseRun, Run("b", 2, [true], ["pgd"], testSet: "beef")])).Message, StringComparison.Ordinal);
        Assert.Contains("threat models", Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([baseRun, Run("b", 2, [true], ["pgd"], threat: new ThreatModel("L-inf", 0.1))])).Message, StringComparison.Ordinal);
        Assert.Contains("threat models", Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([baseRun, Run("b", 2, [true], ["pgd-l2"], threat: new ThreatModel("L2", 0.3))])).Message, StringComparison.Ordinal);
        Assert.Contains("listed twice", Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([baseRun, baseRun])).Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => AttackRunCombination.Combine([baseRun, Run("b", 0, [true, true], ["fgsm"], labels: [7, 7])]));
        Assert.Throws<ArgumentException>(() => AttackRunCombination.Combine([]));
    }
}
