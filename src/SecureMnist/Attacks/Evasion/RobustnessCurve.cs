using SecureMnist.Data;

namespace SecureMnist.Attacks.Evasion;

/// <summary>Accuracy of one attack (or the worst case of all) at one eps.</summary>
public sealed record CurvePoint(double Epsilon, string Attack, double Accuracy);

/// <summary>Accuracy against eps for each named attack and for their per-input worst case.</summary>
public static class RobustnessCurve
{
    public const string WorstCase = "worst case";

    public static IReadOnlyList<CurvePoint> Measure(IClassifier model, LabeledImages data, IReadOnlyList<double> epsilons, IReadOnlyList<string> attacks,
        AttackSettings settings, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(epsilons);
        ArgumentNullException.ThrowIfNull(attacks);
        ArgumentNullException.ThrowIfNull(settings);
        var points = new List<CurvePoint>();
        foreach (var epsilon in epsilons)
        {
            if (epsilon == 0)
            {
                // No budget, no attack: every curve starts at the clean accuracy.
                var clean = AttackEvaluator.Run(model, data, [], cancellationToken: cancellationToken).Report.RobustAccuracy;
                points.AddRange(attacks.Select(name => new CurvePoint(0, name, clean)));
                if (attacks.Count > 1) points.Add(new CurvePoint(0, WorstCase, clean));
                continue;
            }
            // The step size scales with eps so that every point of the curve gets the same relative budget.
            var scaled = settings with { Epsilon = epsilon, StepSize = settings.StepSize * epsilon / settings.Epsilon };
            // The worst case is the per-input conjunction of the single-attack runs, so it is never above any of them.
            var robustUnderAll = Enumerable.Repeat(true, data.Count).ToArray();
            foreach (var name in attacks)
            {
                progress?.Report($"eps {epsilon}: {name}");
                var run = AttackEvaluator.Run(model, data, [AttackCatalog.Create(name, scaled)], cancellationToken: cancellationToken);
                points.Add(new CurvePoint(epsilon, name, run.Report.RobustAccuracy));
                for (var i = 0; i < data.Count; i++)
                    robustUnderAll[i] &= run.CleanPredictions[i] == data.Labels[i] && run.AdversarialPredictions[i] == data.Labels[i];
            }
            if (attacks.Count > 1) points.Add(new CurvePoint(epsilon, WorstCase, (double)robustUnderAll.Count(r => r) / data.Count));
        }
        return points;
    }
}
