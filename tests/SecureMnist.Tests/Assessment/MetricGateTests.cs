using System.Text.Json;
using SecureMnist.Assessment;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.Assessment;

/// <summary>assess --fail-on: conditions parsed strictly, checked against the run's metrics, and the exit code a CI job reads.</summary>
public sealed class MetricGateTests
{
    private static readonly Dictionary<string, Metric> Metrics = new()
    {
        ["baseline.clean_accuracy"] = Metric.Percent(0.985, "clean"),
        ["defense_pgd.worst_case_accuracy"] = Metric.Percent(0.42, "worst case"),
        ["packaging.tampered_refused"] = Metric.Count(9, "refused"),
    };

    [Fact]
    public void A_condition_that_holds_fails_the_gate_and_one_that_does_not_passes()
    {
        var gate = MetricGate.Parse(" baseline.clean_accuracy < 0.99 , defense_pgd.worst_case_accuracy>=0.5,packaging.tampered_refused!=9");
        Assert.Equal(3, gate.Count);
        var failure = Assert.Single(MetricGate.Check(gate, Metrics));
        Assert.Equal("baseline.clean_accuracy<0.99", failure.Condition.ToString());
        Assert.Equal(0.985, failure.Value);
        Assert.Empty(MetricGate.Check(MetricGate.Parse("baseline.clean_accuracy<=0.98,defense_pgd.worst_case_accuracy>0.42,packaging.tampered_refused==8"), Metrics));
    }

    [Fact]
    public void A_metric_the_run_did_not_measure_fails_the_gate()
    {
        var failure = Assert.Single(MetricGate.Check(MetricGate.Parse("poison.attack_success_rate>0.5"), Metrics));
        Assert.True(double.IsNaN(failure.Value));
        Assert.Contains("not measured", failure.Label, StringComparison.Ordinal);
    }

    [Fact]
    public void A_condition_may_compare_two_metrics()
    {
        var metrics = new Dictionary<string, Metric>(Metrics) { ["packaging.tampered_tried"] = Metric.Count(10, "tried") };
        var failure = Assert.Single(MetricGate.Check(MetricGate.Parse("packaging.tampered_refused<packaging.tampered_tried"), metrics));
        Assert.Equal("packaging.tampered_refused<packaging.tampered_tried", failure.Condition.ToString());
        Assert.Empty(MetricGate.Check(MetricGate.Parse("packaging.tampered_refused>=packaging.tampered_tried"), metrics));
        // The other side unmeasured: the gate cannot be checked, so it fails.
        Assert.Contains("packaging.tampered_tried was not measured", Assert.Single(MetricGate.Check(MetricGate.Parse("packaging.tampered_refused<packaging.tampered_tried"), Metrics)).Label);
    }

    [Theory]
    [InlineData("baseline.clean_acuracy<0.9", "no stage measures")]
    [InlineData("baseline.clean_accuracy", "is not METRIC OP NUMBER")]
    [InlineData("baseline.clean_accuracy<ninety", "'ninety', which no stage measures")]
    [InlineData("baseline.clean_accuracy<0.9x", "is not METRIC OP NUMBER")]
    [InlineData("defense_*.worst_case_accuracy<0.9", "name one defended model, e.g. defense_trades.worst_case_accuracy")]
    [InlineData("baseline.clean_accuracy=<0.9", "is not METRIC OP NUMBER")]
    [InlineData(" , ", "at least one condition")]
    public void A_bad_condition_is_refused(string expression, string expected) =>
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => MetricGate.Parse(expression)).Message, StringComparison.Ordinal);

    [Fact]
    public void Assess_exits_1_when_the_gate_fails_and_2_before_any_work_on_a_typo()
    {
        var directory = TestPaths.NewScratchDirectory();
        var (typo, _, typoError) = CliProcess.Run(directory, "assess", "--stages", "data", "--fail-on", "data.train_imgs<1");
        Assert.Equal(2, typo);
        Assert.Contains("no stage measures", typoError, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory, "out")));

        var (failed, output, error) = CliProcess.Run(directory, "assess", "--stages", "data", "--fail-on", "data.train_images<100000", "--json");
        Assert.True(failed == 1, error);
        using var document = JsonDocument.Parse(output);
        var gate = document.RootElement.GetProperty("gate");
        Assert.False(gate.GetProperty("passed").GetBoolean());
        Assert.Equal(60_000, gate.GetProperty("failures")[0].GetProperty("value").GetDouble());
        // The scorecard comes with it: a data-only run has measured no threat's figures, and says so.
        Assert.All(document.RootElement.GetProperty("scorecard").EnumerateObject(), threat => Assert.Equal("not measured", threat.Value.GetString()));

        var (passed, _, passedError) = CliProcess.Run(directory, "assess", "--stages", "data", "--fail-on", "data.train_images<60000");
        Assert.True(passed == 0, passedError);
    }
}
