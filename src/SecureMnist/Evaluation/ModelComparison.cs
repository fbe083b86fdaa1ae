using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Reporting;
using SecureMnist.Security;

namespace SecureMnist.Evaluation;

/// <summary>One model's place on the accuracy–robustness trade-off.</summary>
public sealed record ComparedModel(
    string Model, string Architecture, string Defense, double CleanAccuracy, double RobustAccuracy, IReadOnlyList<AttackStage> Stages,
    int? SelectedEpoch, IReadOnlyList<(int Epoch, double RobustValidationAccuracy)> RobustValidationByEpoch);

/// <summary>Measures several verified models under the same attacks and draws the trade-off and per-epoch robustness.</summary>
public static class ModelComparison
{
    public static ComparedModel Measure(LoadedModel model, LabeledImages test, IReadOnlyList<IEvasionAttack> attacks, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var classifier = new NetworkClassifier(model.Network);
        var report = AttackEvaluator.Run(classifier, test, attacks, cancellationToken: cancellationToken).Report;
        var training = model.Manifest.Training;
        return new ComparedModel(model.Directory, model.Manifest.Architecture, training?.Options.Defense ?? "unknown",
            report.CleanAccuracy, report.RobustAccuracy, report.Stages, training?.SelectedEpoch,
            training?.RobustValidationByEpoch() ?? []);
    }

    /// <summary>Writes tradeoff.png (clean against robust accuracy, one point per model) and, when any run validated robustness per epoch, robust-by-epoch.png.</summary>
    public static IReadOnlyList<string> Plot(IReadOnlyList<ComparedModel> models, string attackDescription, string directory)
    {
        ArgumentNullException.ThrowIfNull(models);
        var written = new List<string>();
        var tradeoff = Path.Combine(directory, "tradeoff.png");
        LineChart.Save(tradeoff, $"accuracy-robustness trade-off ({attackDescription})", "robust accuracy (%)", "clean accuracy (%)",
            models.Select(m => new Series($"{Path.GetFileName(Path.TrimEndingDirectorySeparator(m.Model))} ({m.Defense})", [(100 * m.RobustAccuracy, 100 * m.CleanAccuracy)])).ToList());
        written.Add(tradeoff);
        var curves = models.Where(m => m.RobustValidationByEpoch.Count > 0).ToList();
        if (curves.Count > 0)
        {
            var byEpoch = Path.Combine(directory, "robust-by-epoch.png");
            LineChart.Save(byEpoch, "PGD accuracy on held-out images after each epoch", "epoch", "robust validation accuracy (%)",
                curves.Select(m => new Series($"{Path.GetFileName(Path.TrimEndingDirectorySeparator(m.Model))} ({m.Defense})",
                    m.RobustValidationByEpoch.Select(p => ((double)p.Epoch, 100 * p.RobustValidationAccuracy)).ToList())).ToList(), 0, 100);
            written.Add(byEpoch);
        }
        return written;
    }
}
