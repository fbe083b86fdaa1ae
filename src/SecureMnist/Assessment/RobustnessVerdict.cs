using System.Text.Json.Nodes;

namespace SecureMnist.Assessment;

/// <summary>
/// One model's headline robust figure beside what stands behind it: the gradient-masking checks (a failed one makes the figure an
/// upper bound) and their numbers. The report shows one row per model, so nobody reads a robust accuracy without its checks.
/// </summary>
public sealed record RobustnessVerdict(string Model, Metric? Clean, Metric WorstCase, Metric? ChecksFailed, IReadOnlyList<string> FailedChecks,
    Metric? WhiteBox, Metric? Square, Metric? AtEpsilonOne, Metric? StepChange, Metric? Transfer, Metric? AllAttacks = null)
{
    /// <summary>"not run", "all N passed" or "K failed: names".</summary>
    public string Checks => ChecksFailed switch
    {
        null => "not run",
        { Value: 0 } => "all passed",
        { } failed => $"{failed.Value:0} failed{(FailedChecks.Count > 0 ? ": " + string.Join(", ", FailedChecks) : "")}",
    };

    /// <summary>Whether the robust figure stands: its checks ran and none failed.</summary>
    public bool Trusted => ChecksFailed is { Value: 0 };

    /// <summary>The baseline's and each defended model's verdict, from an assessment's metrics and the masking checks' details.</summary>
    public static IReadOnlyList<RobustnessVerdict> From(AssessmentResults results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var metrics = results.Metrics;
        Metric? Get(string key) => metrics.GetValueOrDefault(key);
        var verdicts = new List<RobustnessVerdict>();
        if (Get("baseline.worst_case_accuracy") is { } baseline)
            verdicts.Add(new("baseline", Get(BaselineStage.CleanAccuracy.Name), baseline, null, [], null, null, null, null, null));
        var details = results.Stages.FirstOrDefault(s => s.Stage == "robustness-checks")?.Details as JsonObject;
        const string suffix = ".worst_case_accuracy";
        foreach (var prefix in MetricKey.DefencePrefixesIn(metrics.Keys, suffix))
        {
            var key = prefix + suffix;
            var defense = details?.Select(kv => kv.Key).FirstOrDefault(d => MetricKey.DefensePrefixOf(d) == prefix) ?? prefix["defense_".Length..].Replace('_', '-');
            string For(MetricKey k) => k.For(defense);
            var failed = (details?[defense]?["checks"] as JsonArray ?? [])
                .Where(c => c?["passed"]?.GetValueKind() == System.Text.Json.JsonValueKind.False)
                .Select(c => c!["name"]!.GetValue<string>()).ToList();
            verdicts.Add(new($"{defense}-trained", Get(For(AdversarialTrainingStage.CleanAccuracy)), metrics[key], Get(For(RobustnessChecksStage.ChecksFailed)), failed,
                Get(For(RobustnessChecksStage.WhiteBoxAccuracy)), Get(For(RobustnessChecksStage.SquareAccuracy)), Get(For(RobustnessChecksStage.AccuracyAtEpsilonOne)),
                Get(For(RobustnessChecksStage.StepChange)), Get(For(RobustnessChecksStage.TransferAccuracy)), Get(For(RobustnessChecksStage.AllAttacksAccuracy))));
        }
        return verdicts;
    }

    /// <summary>The table's columns, in order: header and the cell of a verdict.</summary>
    public static IReadOnlyList<(string Header, Func<RobustnessVerdict, string> Cell)> Columns { get; } =
    [
        ("model", v => v.Model),
        ("clean", v => Format(v.Clean)),
        ("robust: per-input worst case", v => v.WorstCase.Format()),
        ("gradient-masking checks", v => v.Checks),
        ("white box on the checked images", v => Format(v.WhiteBox)),
        ("every attack of the checks, per input", v => Format(v.AllAttacks)),
        ("Square (no gradients)", v => Format(v.Square)),
        ("APGD-CE at eps 1 (about 0)", v => Format(v.AtEpsilonOne)),
        ("drop with a longer attack (points)", v => Format(v.StepChange)),
        ("transfer from the baseline", v => Format(v.Transfer)),
    ];

    private static string Format(Metric? metric) => metric?.Format() ?? "-";
}
