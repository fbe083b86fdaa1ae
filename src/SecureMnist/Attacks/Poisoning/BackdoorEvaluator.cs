using System.Diagnostics;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Reporting;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Attacks.Poisoning;

/// <summary>Attack success for one source class: triggered test images of that class predicted as the target.</summary>
public sealed record SourceClassSuccess(int SourceClass, int Images, int PredictedAsTarget, double AttackSuccessRate);

/// <summary>
/// How a backdoor behaves: accuracy on clean test images, and the attack success rate (ASR): the share of
/// triggered test images of the attacked classes (every class but the target, or a source-specific backdoor's sources) that the
/// model predicts as the target. <see cref="PerSourceClass"/> lists every class but the target, so a source-specific backdoor's
/// cover classes show how often the trigger misfires on them.
/// </summary>
public sealed record BackdoorReport(
    int TargetClass, string Trigger, int CleanImages, double CleanAccuracy,
    int TriggeredImages, double AttackSuccessRate, double TriggeredAccuracy,
    IReadOnlyList<SourceClassSuccess> PerSourceClass, double Seconds);

public static class BackdoorEvaluator
{
    /// <summary>Evaluates the backdoor a poison manifest describes (its trigger, target and attacked classes).</summary>
    public static BackdoorReport Evaluate(Module<Tensor, Tensor> network, LabeledImages test, PoisonManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var trigger = manifest.Trigger ?? throw new ArgumentException($"a {DataPoisoner.Kebab(manifest.Mode)} poisoning has no trigger to test");
        return Evaluate(network, test, trigger, manifest.TargetClass, attacked: manifest.AttackedClasses);
    }

    /// <param name="attacked">The classes the ASR is measured on (null: every class but the target).</param>
    public static BackdoorReport Evaluate(Module<Tensor, Tensor> network, LabeledImages test, BackdoorTrigger trigger, int targetClass, int batchSize = 1000,
        IReadOnlyCollection<int>? attacked = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(trigger);
        trigger.Validate(test.Rows, test.Columns);
        var stopwatch = Stopwatch.StartNew();
        using var classifier = new NetworkClassifier(network, freezeParameters: false);
        using var scope = NewDisposeScope();
        var images = test.ImagesTensor();
        var clean = classifier.Predict(images, batchSize);
        var triggered = classifier.Predict(trigger.Apply(images), batchSize);

        var cleanCorrect = 0;
        var triggeredCorrect = 0;
        var perClass = new (int Images, int Hits)[10];
        for (var i = 0; i < test.Count; i++)
        {
            var label = test.Labels[i];
            if (clean[i] == label) cleanCorrect++;
            if (triggered[i] == label) triggeredCorrect++;
            if (label == targetClass) continue;
            perClass[label].Images++;
            if (triggered[i] == targetClass) perClass[label].Hits++;
        }
        var sources = Enumerable.Range(0, perClass.Length).Where(c => c != targetClass && perClass[c].Images > 0)
            .Select(c => new SourceClassSuccess(c, perClass[c].Images, perClass[c].Hits, (double)perClass[c].Hits / perClass[c].Images))
            .ToArray();
        var measured = sources.Where(s => attacked is null || attacked.Contains(s.SourceClass)).ToArray();
        var attackedImages = measured.Sum(s => s.Images);
        return new BackdoorReport(targetClass, trigger.ToString(), test.Count, (double)cleanCorrect / test.Count,
            attackedImages, attackedImages == 0 ? 0 : (double)measured.Sum(s => s.PredictedAsTarget) / attackedImages,
            (double)triggeredCorrect / test.Count, sources, stopwatch.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A bar chart of the attack success rate per source class; classes the backdoor does not fully control are drawn in the
    /// alarm colour, and each bar carries the number of triggered images it missed.
    /// </summary>
    public static void PlotPerSourceClass(BackdoorReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var bars = report.PerSourceClass
            .Select(s => new Bar($"{s.SourceClass}", 100 * s.AttackSuccessRate, s.PredictedAsTarget < s.Images, $"{s.Images - s.PredictedAsTarget}"))
            .ToList();
        BarChart.Save(path, $"backdoor success per true class (target {report.TargetClass})",
            "true class of the triggered test image; above a bar: triggered images not predicted as the target",
            $"triggered images predicted {report.TargetClass} (%)", bars, highlightedLabel: "class with misses", yMax: 100);
    }

    /// <summary>A PNG with the first test image of every class, clean and triggered, each with the model's prediction.</summary>
    public static void SaveExamples(Module<Tensor, Tensor> network, LabeledImages test, BackdoorTrigger trigger, int targetClass, string path)
    {
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(trigger);
        var picks = Enumerable.Range(0, 10).Select(c => Array.IndexOf(test.Labels, (byte)c)).Where(i => i >= 0).ToArray();
        var examples = test.Select(picks);
        using var classifier = new NetworkClassifier(network, freezeParameters: false);
        using var scope = NewDisposeScope();
        var clean = examples.ImagesTensor();
        var triggered = trigger.Apply(clean);
        GridRow Row(string caption, Tensor images)
        {
            var predictions = classifier.Predict(images);
            var pixels = images.reshape(examples.Count, -1).data<float>().ToArray();
            return new GridRow(caption, Enumerable.Range(0, examples.Count)
                .Select(k => (pixels[(k * examples.PixelsPerImage)..((k + 1) * examples.PixelsPerImage)], false, $"{examples.Labels[k]} -> {predictions[k]}"))
                .ToArray());
        }
        ImageGrid.Save(path, $"backdoor: {trigger}, target {targetClass} (true -> predicted)", [], [Row("clean", clean), Row("triggered", triggered)]);
    }
}
