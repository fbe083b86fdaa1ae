using System.Globalization;

namespace SecureMnist.Assessment;

/// <summary>Where a threat stands after an assessment, by its profile's thresholds.</summary>
public enum ThreatStatus
{
    /// <summary>Every threshold was measured and met.</summary>
    Mitigated,
    /// <summary>Some thresholds were met; others were missed or not measured.</summary>
    Partly,
    /// <summary>Thresholds were measured and none was met.</summary>
    Open,
    /// <summary>None of the threat's figures was measured: no verdict, and no colour of a pass.</summary>
    NotMeasured,
}

/// <summary>
/// What a threat must show to count as mitigated: conditions a measured figure must meet, in <see cref="MetricGate"/>'s syntax
/// (<c>service.oversized_status==413</c>, or another figure on the right: <c>packaging.tampered_refused>=packaging.tampered_tried</c>).
/// Conditions on <c>defense_*</c> figures are met together by one defended model: the best of the run (the one a user would serve).
/// </summary>
public sealed record ThreatThreshold(string ThreatId, IReadOnlyList<GateCondition> Conditions)
{
    public static ThreatThreshold Of(string threatId, string conditions) => new(threatId, MetricGate.Parse(conditions, defenceWildcards: true));
}

/// <summary>One condition of a threat's threshold as this run measured it (<see cref="Value"/> null when not measured).</summary>
public sealed record ThresholdCheck(GateCondition Condition, double? Value, string Formatted, string Required)
{
    public bool Met => Value is { } v && Condition.HoldsFor(v, Threshold);

    /// <summary>The figure the run lacks (the condition's own, or the one it compares with), when it cannot be checked.</summary>
    public string? Missing { get; init; }

    /// <summary>The right-hand side: the condition's number, or the measured value of the figure it compares with.</summary>
    public double Threshold { get; init; } = Condition.Threshold;
}

/// <summary>A threat's line of the scorecard.</summary>
public sealed record ThreatScore(Threat Threat, ThreatStatus Status, IReadOnlyList<ThresholdCheck> Checks, string? Model)
{
    public string StatusText => Scorecard.Text(Status);
}

/// <summary>
/// The scorecard that opens the report: each STRIDE threat with a status decided by the profile's stated thresholds
/// (<see cref="AssessmentProfile.Thresholds"/>). A threat whose figures were not measured is "not measured", never a pass; one whose
/// figures meet some thresholds and miss or lack others is "partly mitigated".
/// </summary>
public static class Scorecard
{
    /// <summary>
    /// The thresholds both profiles state. The robust bar (90% under the per-input worst case at the assessed eps, 98% clean, no
    /// gradient-masking check failed) is the field's for MNIST at eps 0.3; the privacy bar asks that DP-SGD hold membership inference to
    /// 1% true positives at 0.1% false positives, and that no attack exceed the accountant's bound; the poisoning bar asks the sanitized
    /// model to keep the backdoor under 5% and the default detector to meet its rule in at least 90% of the grid's cells.
    /// </summary>
    public static IReadOnlyList<ThreatThreshold> Default { get; } =
    [
        ThreatThreshold.Of("S1", "defense_*.worst_case_accuracy>=0.9, defense_*.clean_accuracy>=0.98, defense_*.masking_checks_failed==0"),
        ThreatThreshold.Of("S2", "packaging.signed_package_verifies==1, packaging.unsigned_refused==1, packaging.tampered_refused>=packaging.tampered_tried"),
        ThreatThreshold.Of("T1", "sanitize.attack_success_rate<=0.05, detection.recall>=0.95, poison_grid.default_rule_share>=0.9"),
        ThreatThreshold.Of("T2", "packaging.tampered_refused>=packaging.tampered_tried"),
        ThreatThreshold.Of("T3", "dependencies.vulnerable==0"),
        ThreatThreshold.Of("R1", "service.audit_intact==1, service.audit_records>=1"),
        ThreatThreshold.Of("I1", "service.unauthenticated_status==401, service.label_only_scores==0, privacy.dp_membership_tpr_at_0_1_fpr<=0.01, "
            + "privacy.dp_attacks_outside_bound==0, theft.monitor_attacks_flagged>=theft.monitor_attacks, theft.monitor_benign_flagged==0, "
            + "theft.sealed_tamper_refused>=theft.sealed_tamper_tried"),
        ThreatThreshold.Of("D1", "service.oversized_status==413, service.rate_limited_status==429"),
        ThreatThreshold.Of("E1", "service.admin_with_predict_key_status==403"),
    ];

    public static string Text(ThreatStatus status) => status switch
    {
        ThreatStatus.Mitigated => "mitigated",
        ThreatStatus.Partly => "partly mitigated",
        ThreatStatus.Open => "open",
        _ => "not measured",
    };

    /// <summary>The scorecard of a run under these thresholds, in the threat model's order (threats without a threshold are left out).</summary>
    public static IReadOnlyList<ThreatScore> Score(IReadOnlyList<ThreatThreshold> thresholds, IReadOnlyDictionary<string, Metric> metrics)
    {
        ArgumentNullException.ThrowIfNull(thresholds);
        ArgumentNullException.ThrowIfNull(metrics);
        return ThreatModel.Threats
            .Select(threat => (threat, threshold: thresholds.FirstOrDefault(t => t.ThreatId == threat.Id)))
            .Where(p => p.threshold is not null)
            .Select(p => Score(p.threat, p.threshold!, metrics))
            .ToList();
    }

    public static ThreatScore Score(Threat threat, ThreatThreshold threshold, IReadOnlyDictionary<string, Metric> metrics)
    {
        ArgumentNullException.ThrowIfNull(threat);
        ArgumentNullException.ThrowIfNull(threshold);
        ArgumentNullException.ThrowIfNull(metrics);
        // Conditions on defended models are met together by one model: try each defence the run measured, keep the one meeting most.
        var defences = MetricKey.DefencePrefixesIn(metrics.Keys);
        var generic = threshold.Conditions.Any(c => c.Metric.Contains('*', StringComparison.Ordinal));
        var candidates = generic && defences.Count > 0 ? defences.Cast<string?>().ToList() : [null];
        var best = candidates
            .Select(prefix => (prefix, checks: threshold.Conditions.Select(c => Check(Instantiate(c, prefix), metrics)).ToList()))
            .OrderByDescending(c => c.checks.Count(x => x.Met)).ThenByDescending(c => c.checks.Count(x => x.Value is not null))
            .First();
        var measured = best.checks.Count(c => c.Value is not null);
        var met = best.checks.Count(c => c.Met);
        var status = measured == 0 ? ThreatStatus.NotMeasured
            : met == best.checks.Count ? ThreatStatus.Mitigated
            : met == 0 ? ThreatStatus.Open
            : ThreatStatus.Partly;
        var model = best.prefix is null ? null : metrics.TryGetValue(best.prefix + ".worst_case_accuracy", out var worst) ? ModelOf(worst.Label, best.prefix) : best.prefix;
        return new ThreatScore(threat, status, best.checks, model);
    }

    private static string ModelOf(string label, string prefix) => label.Contains(':', StringComparison.Ordinal) ? label[..label.IndexOf(':', StringComparison.Ordinal)] : prefix;

    private static GateCondition Instantiate(GateCondition condition, string? prefix) => prefix is null ? condition : condition with
    {
        Metric = condition.Metric.Replace(MetricKey.DefensePrefix, prefix, StringComparison.Ordinal),
        ThresholdMetric = condition.ThresholdMetric?.Replace(MetricKey.DefensePrefix, prefix, StringComparison.Ordinal),
    };

    private static ThresholdCheck Check(GateCondition condition, IReadOnlyDictionary<string, Metric> metrics)
    {
        var (metric, other, threshold, missing) = condition.Resolve(metrics);
        if (other is null && condition.ThresholdMetric is { } name)
            return new ThresholdCheck(condition, null, metric?.Format() ?? "not measured", $"{condition.Operator} {name} (not measured)") { Missing = missing };
        var required = other is not null ? $"{condition.Operator} {other.Format()} ({condition.ThresholdMetric})"
            : $"{condition.Operator} {metric?.FormatValue(threshold) ?? Invariant(threshold)}";
        return new ThresholdCheck(condition, metric?.Value, metric?.Format() ?? "not measured", required) { Threshold = threshold, Missing = missing };
    }

    /// <summary>For results.json: the scorecard with its thresholds and values formatted as the report shows them.</summary>
    public static object Document(IReadOnlyList<ThreatScore> scores) => scores.Select(s => new
    {
        threat = s.Threat.Id,
        status = s.StatusText,
        model = s.Model,
        checks = s.Checks.Select(c => new
        {
            condition = c.Condition.ToString(),
            metric = c.Condition.Metric,
            value = c.Value,
            formatted = c.Formatted,
            required = c.Required,
            met = c.Met,
        }),
    }).ToList();

    internal static string Invariant(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);
}
