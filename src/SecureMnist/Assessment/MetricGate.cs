using System.Globalization;
using System.Text.RegularExpressions;

namespace SecureMnist.Assessment;

/// <summary>
/// One condition of a gate: a metric key, a comparison and a number, e.g. <c>baseline.worst_case_accuracy&lt;0.9</c>, or another
/// metric in place of the number (<see cref="ThresholdMetric"/>), e.g. <c>packaging.tampered_refused&lt;packaging.tampered_tried</c>.
/// </summary>
public sealed record GateCondition(string Metric, string Operator, double Threshold, string? ThresholdMetric = null)
{
    public bool HoldsFor(double value) => HoldsFor(value, Threshold);

    /// <summary>Whether the comparison holds against <paramref name="threshold"/> (the other metric's value, for a metric-to-metric condition).</summary>
    public bool HoldsFor(double value, double threshold) => Operator switch
    {
        "<" => value < threshold,
        "<=" => value <= threshold,
        ">" => value > threshold,
        ">=" => value >= threshold,
        "==" => value == threshold,
        _ => value != threshold,
    };

    /// <summary>
    /// The condition's operands in a run: its metric, the other metric when compared to one, the threshold in effect (the other's value,
    /// or the number), and the first key the run did not measure (null when both were).
    /// </summary>
    public (Metric? Value, Metric? Other, double Threshold, string? Missing) Resolve(IReadOnlyDictionary<string, Metric> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var value = metrics.GetValueOrDefault(Metric);
        var other = ThresholdMetric is { } name ? metrics.GetValueOrDefault(name) : null;
        var missing = value is null ? Metric : ThresholdMetric is not null && other is null ? ThresholdMetric : null;
        return (value, other, other?.Value ?? Threshold, missing);
    }

    public override string ToString() => $"{Metric}{Operator}{ThresholdMetric ?? Threshold.ToString("0.####", CultureInfo.InvariantCulture)}";
}

/// <summary>A condition that held: the run fails the gate because of it.</summary>
public sealed record GateFailure(GateCondition Condition, double Value, string Label);

/// <summary>
/// A CI gate over an assessment's metrics (<c>assess --fail-on</c>): comma-separated conditions, each failing the run when it holds. A
/// percentage is compared as the fraction it is stored as (0.9 is 90%). A key no stage declares is refused before any work, so a typo
/// cannot pass silently; a declared key the run did not measure (a stage not run, or not in this profile) fails the gate too, since a
/// gate that cannot be checked must not pass.
/// </summary>
public static partial class MetricGate
{
    [GeneratedRegex(@"^\s*(?<metric>[a-z0-9_.*]+)\s*(?<op><=|>=|==|!=|<|>)\s*(?:(?<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|(?<other>[a-z][a-z0-9_.*]*))\s*$")]
    private static partial Regex ConditionPattern();

    /// <param name="expression">The conditions, comma-separated.</param>
    /// <param name="defenceWildcards">Whether "defense_*" may stand for any defended model (the scorecard's thresholds); a gate names one.</param>
    public static IReadOnlyList<GateCondition> Parse(string expression, bool defenceWildcards = false)
    {
        ArgumentNullException.ThrowIfNull(expression);
        if (expression.Length > 4096) throw new ArgumentException("--fail-on is at most 4,096 characters");
        var conditions = new List<GateCondition>();
        foreach (var part in expression.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var match = ConditionPattern().Match(part);
            if (!match.Success)
                throw new ArgumentException($"--fail-on condition '{part}' is not METRIC OP NUMBER or METRIC OP METRIC (OP one of < <= > >= == !=), e.g. baseline.worst_case_accuracy<0.9");
            var metric = match.Groups["metric"].Value;
            var other = match.Groups["other"].Success ? match.Groups["other"].Value : null;
            foreach (var name in other is null ? [metric] : new[] { metric, other })
                if (!defenceWildcards && name.Contains('*', StringComparison.Ordinal))
                    throw new ArgumentException($"--fail-on names the pattern '{name}'; name one defended model, e.g. {name.Replace(MetricKey.DefensePrefix, "defense_trades", StringComparison.Ordinal)}");
                else if (!SecurityAssessment.Stages.Any(s => s.Declares(name)))
                    throw new ArgumentException($"--fail-on names '{name}', which no stage measures; the metrics are listed in results.json (e.g. {string.Join(", ", SecurityAssessment.Stages.SelectMany(s => s.MetricKeys).Take(3).Select(k => k.Name))})");
            conditions.Add(other is null
                ? new GateCondition(metric, match.Groups["op"].Value, double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture))
                : new GateCondition(metric, match.Groups["op"].Value, double.NaN, other));
        }
        if (conditions.Count == 0) throw new ArgumentException("--fail-on needs at least one condition, e.g. baseline.worst_case_accuracy<0.9");
        return conditions;
    }

    /// <summary>The conditions that hold (or cannot be checked) for these metrics: empty when the gate passes.</summary>
    public static IReadOnlyList<GateFailure> Check(IReadOnlyList<GateCondition> conditions, IReadOnlyDictionary<string, Metric> metrics)
    {
        ArgumentNullException.ThrowIfNull(conditions);
        ArgumentNullException.ThrowIfNull(metrics);
        var failures = new List<GateFailure>();
        foreach (var condition in conditions)
        {
            var (metric, _, threshold, missing) = condition.Resolve(metrics);
            if (missing is not null)
                failures.Add(new GateFailure(condition, metric?.Value ?? double.NaN, missing == condition.Metric
                    ? "not measured in this run, so the gate cannot pass" : $"{missing} was not measured in this run, so the gate cannot pass"));
            else if (condition.HoldsFor(metric!.Value, threshold)) failures.Add(new GateFailure(condition, metric.Value, metric.Label));
        }
        return failures;
    }
}
