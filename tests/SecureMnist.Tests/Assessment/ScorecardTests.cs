using SecureMnist.Assessment;

namespace SecureMnist.Tests.Assessment;

/// <summary>The report's scorecard: each threat's status from the profile's thresholds, and "not measured" never a pass.</summary>
public sealed class ScorecardTests
{
    private static ThreatScore Score(string threat, string thresholds, params (string Key, Metric Metric)[] metrics) =>
        Scorecard.Score(ThreatModel.Threats.Single(t => t.Id == threat), ThreatThreshold.Of(threat, thresholds), metrics.ToDictionary(m => m.Key, m => m.Metric));

    [Fact]
    public void A_threat_is_mitigated_only_when_every_threshold_is_measured_and_met()
    {
        const string d1 = "service.oversized_status==413, service.rate_limited_status==429";
        Assert.Equal(ThreatStatus.Mitigated, Score("D1", d1, ("service.oversized_status", Metric.Count(413, "")), ("service.rate_limited_status", Metric.Count(429, ""))).Status);
        Assert.Equal(ThreatStatus.Partly, Score("D1", d1, ("service.oversized_status", Metric.Count(413, "")), ("service.rate_limited_status", Metric.Count(200, ""))).Status);
        // Met where measured, but a threshold lacks its figure: not a pass.
        Assert.Equal(ThreatStatus.Partly, Score("D1", d1, ("service.oversized_status", Metric.Count(413, ""))).Status);
        Assert.Equal(ThreatStatus.Open, Score("D1", d1, ("service.oversized_status", Metric.Count(200, "")), ("service.rate_limited_status", Metric.Count(200, ""))).Status);
        var unmeasured = Score("D1", d1);
        Assert.Equal(ThreatStatus.NotMeasured, unmeasured.Status);
        Assert.All(unmeasured.Checks, c => Assert.False(c.Met));
        Assert.Equal("not measured", unmeasured.StatusText);
    }

    [Fact]
    public void Defended_model_thresholds_are_met_together_by_the_best_model()
    {
        const string s1 = "defense_*.worst_case_accuracy>=0.9, defense_*.clean_accuracy>=0.98";
        // fgsm is clean but not robust, trades is robust but not clean enough: no single model meets both.
        var split = Score("S1", s1,
            ("defense_fgsm.worst_case_accuracy", Metric.Percent(0.0, "fgsm-trained: worst case")), ("defense_fgsm.clean_accuracy", Metric.Percent(0.99, "")),
            ("defense_trades.worst_case_accuracy", Metric.Percent(0.93, "trades-trained: worst case")), ("defense_trades.clean_accuracy", Metric.Percent(0.97, "")));
        Assert.Equal(ThreatStatus.Partly, split.Status);
        var both = Score("S1", s1,
            ("defense_fgsm.worst_case_accuracy", Metric.Percent(0.0, "fgsm-trained: worst case")), ("defense_fgsm.clean_accuracy", Metric.Percent(0.99, "")),
            ("defense_trades.worst_case_accuracy", Metric.Percent(0.93, "trades-trained: worst case")), ("defense_trades.clean_accuracy", Metric.Percent(0.99, "")));
        Assert.Equal(ThreatStatus.Mitigated, both.Status);
        Assert.Equal("trades-trained", both.Model);
        Assert.Equal(["defense_trades.worst_case_accuracy", "defense_trades.clean_accuracy"], both.Checks.Select(c => c.Condition.Metric));
        Assert.Equal(">= 90.00%", both.Checks[0].Required);
        Assert.Equal(ThreatStatus.NotMeasured, Score("S1", s1, ("baseline.worst_case_accuracy", Metric.Percent(0, ""))).Status);
    }

    [Fact]
    public void A_threshold_may_compare_two_figures()
    {
        const string t2 = "packaging.tampered_refused>=packaging.tampered_tried";
        Assert.Equal(ThreatStatus.Mitigated, Score("T2", t2, ("packaging.tampered_refused", Metric.Count(57, "")), ("packaging.tampered_tried", Metric.Count(57, ""))).Status);
        Assert.Equal(ThreatStatus.Open, Score("T2", t2, ("packaging.tampered_refused", Metric.Count(56, "")), ("packaging.tampered_tried", Metric.Count(57, ""))).Status);
        var half = Score("T2", t2, ("packaging.tampered_refused", Metric.Count(57, "")));
        Assert.Equal(ThreatStatus.NotMeasured, half.Status);
        Assert.Equal("packaging.tampered_tried", half.Checks[0].Missing);
    }

    [Fact]
    public void Every_threat_has_thresholds_in_both_profiles_and_each_names_a_declared_figure()
    {
        foreach (var profile in new[] { AssessmentProfile.Quick, AssessmentProfile.Full })
            Assert.Equal(ThreatModel.Threats.Select(t => t.Id), profile.Thresholds.Select(t => t.ThreatId));
        foreach (var threshold in Scorecard.Default)
            foreach (var condition in threshold.Conditions)
                Assert.True(ThreatModel.Threats.Single(t => t.Id == threshold.ThreatId).Evidence.Any(e => new MetricKey(e).Matches(condition.Metric) || e == condition.Metric),
                    $"{threshold.ThreatId}: {condition.Metric} is not among the figures the threat cites");
    }
}
