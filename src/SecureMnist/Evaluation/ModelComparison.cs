using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Reporting;
using SecureMnist.Security;

namespace SecureMnist.Evaluation;

/// <summary>One model's place on the accuracy–robustness trade-off.</summary>
public sealed record ComparedModel(
    string Model, string Architecture, string Defense, double CleanAccuracy, double RobustAccuracy, IReadOnlyList<AttackStage> Stages,
    int? SelectedEpoch, IReadOnlyList<(int Epoch, double RobustValidationAccuracy)> RobustValidationByEpoch, Training.TrainingOptions? Options = null);

/// <summary>Models of one recipe trained with different seeds, and the spread of their clean and robust accuracy over the seeds.</summary>
public sealed record SeedGroup(IReadOnlyList<string> Models, IReadOnlyList<int> Seeds, SeedSpread Clean, SeedSpread Robust);

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
            training?.RobustValidationByEpoch() ?? [], training?.Options);
    }

    /// <summary>
    /// The compared models that share a training recipe except for the seed (two or more seeds): the figures over seeds that a single
    /// model's binomial interval does not cover.
    /// </summary>
    public static IReadOnlyList<SeedGroup> SeedGroups(IReadOnlyList<ComparedModel> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        return models.Where(m => m.Options is not null)
            .GroupBy(m => m.Options! with { Seed = 0 })
            .Select(g => g.DistinctBy(m => m.Options!.Seed).ToList())
            .Where(g => g.Count >= 2)
            .Select(g => new SeedGroup(g.Select(m => m.Model).ToList(), g.Select(m => m.Options!.Seed).ToList(),
                SeedInterval.Of(g.Select(m => m.CleanAccuracy).ToList()), SeedInterval.Of(g.Select(m => m.RobustAccuracy).ToList())))
            .ToList();
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
