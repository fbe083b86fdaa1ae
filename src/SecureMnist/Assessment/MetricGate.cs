using System.Globalization;
using System.Text.RegularExpressions;

namespace SecureMnist.Assessment;

/// <summary>One condition of a gate: a metric key, a comparison and a number, e.g. <c>baseline.worst_case_accuracy&lt;0.9</c>.</summary>
public sealed record GateCondition(string Metric, string Operator, double Threshold)
{
    public bool HoldsFor(double value) => Operator switch
    {
        "<" => value < Threshold,
        "<=" => value <= Threshold,
        ">" => value > Threshold,
        ">=" => value >= Threshold,
        "==" => value == Threshold,
        _ => value != Threshold,
    };

    public override string ToString() => $"{Metric}{Operator}{Threshold.ToString("0.####", CultureInfo.InvariantCulture)}";
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
    [GeneratedRegex(@"^\s*(?<metric>[a-z0-9_.]+)\s*(?<op><=|>=|==|!=|<|>)\s*(?<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")]
    private static partial Regex ConditionPattern();

    public static IReadOnlyList<GateCondition> Parse(string expression)
    {
        ArgumentNullException.ThrowIfNull(expression);
        if (expression.Length > 4096) throw new ArgumentException("--fail-on is at most 4,096 characters");
        var conditions = new List<GateCondition>();
        foreach (var part in expression.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var match = ConditionPattern().Match(part);
            if (!match.Success)
                throw new ArgumentException($"--fail-on condition '{part}' is not METRIC OP NUMBER (OP one of < <= > >= == !=), e.g. baseline.worst_case_accuracy<0.9");
            var metric = match.Groups["metric"].Value;
            if (!SecurityAssessment.Stages.Any(s => s.Declares(metric)))
                throw new ArgumentException($"--fail-on names '{metric}', which no stage measures; the metrics are listed in results.json (e.g. {string.Join(", ", SecurityAssessment.Stages.SelectMany(s => s.MetricKeys).Take(3).Select(k => k.Name))})");
            conditions.Add(new GateCondition(metric, match.Groups["op"].Value, double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)));
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
            if (!metrics.TryGetValue(condition.Metric, out var metric))
            {
                failures.Add(new GateFailure(condition, double.NaN, "not measured in this run, so the gate cannot pass"));
                continue;
            }
            if (condition.HoldsFor(metric.Value)) failures.Add(new GateFailure(condition, metric.Value, metric.Label));
        }
        return failures;
    }
}
