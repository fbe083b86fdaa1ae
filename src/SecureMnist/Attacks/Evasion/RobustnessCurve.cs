using SecureMnist.Data;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Accuracy of one attack (or the worst case of all) at one eps.</summary>
public sealed record CurvePoint(double Epsilon, string Attack, double Accuracy);

/// <summary>A curve, and per eps which inputs stayed robust under all of its attacks.</summary>
public sealed record CurveMeasurement(IReadOnlyList<CurvePoint> Points, IReadOnlyDictionary<double, bool[]> RobustUnderAll);

/// <summary>Accuracy against eps for each named attack and for their per-input worst case.</summary>
public static class RobustnessCurve
{
    public const string WorstCase = "worst case";

    public static IReadOnlyList<CurvePoint> Measure(IClassifier model, LabeledImages data, IReadOnlyList<double> epsilons, IReadOnlyList<string> attacks,
        AttackSettings settings, IProgress<string>? progress = null, CancellationToken cancellationToken = default) =>
        MeasureInputs(model, data, epsilons, attacks, settings, progress, cancellationToken).Points;

    /// <summary>The curve, keeping for every eps the inputs robust under all its attacks (to combine with other runs per input).</summary>
    public static CurveMeasurement MeasureInputs(IClassifier model, LabeledImages data, IReadOnlyList<double> epsilons, IReadOnlyList<string> attacks,
        AttackSettings settings, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(epsilons);
        ArgumentNullException.ThrowIfNull(attacks);
        ArgumentNullException.ThrowIfNull(settings);
        var points = new List<CurvePoint>();
        var robustAt = new Dictionary<double, bool[]>();
        foreach (var epsilon in epsilons)
        {
            if (epsilon == 0)
            {
                // No budget, no attack: every curve starts at the clean accuracy.
                var cleanRun = AttackEvaluator.Run(model, data, [], cancellationToken: cancellationToken);
                var clean = cleanRun.Report.RobustAccuracy;
                robustAt[0] = cleanRun.Robust();
                points.AddRange(attacks.Select(name => new CurvePoint(0, name, clean)));
                if (attacks.Count > 1) points.Add(new CurvePoint(0, WorstCase, clean));
                continue;
            }
            // The step size scales with eps so that every point of the curve gets the same relative budget.
            var scaled = settings with { Epsilon = epsilon, StepSize = settings.StepSize * epsilon / settings.Epsilon };
            // The worst case is the per-input conjunction of the single-attack runs, so it is never above any of them.
            var runs = new List<bool[]>();
            foreach (var name in attacks)
            {
                progress?.Report($"eps {epsilon}: {name}");
                var run = AttackEvaluator.Run(model, data, [AttackCatalog.Create(name, scaled)], cancellationToken: cancellationToken);
                points.Add(new CurvePoint(epsilon, name, run.Report.RobustAccuracy));
                runs.Add(run.Robust());
            }
            robustAt[epsilon] = RobustnessRun.RobustUnderAll(runs);
            if (attacks.Count > 1) points.Add(new CurvePoint(epsilon, WorstCase, RobustnessRun.WorstCaseAccuracy(runs)));
        }
        return new CurveMeasurement(points, robustAt);
    }
}
