using System.Text.Json.Nodes;
using SecureMnist.Attacks.Extraction;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Assessment;

/// <summary>
/// How the model-theft stage attacks and watches: knockoff extraction from MNIST test digits at each of <see cref="Budgets"/>, with
/// labels only and, when <see cref="WithScores"/>, with scores too; the transfer rate on <see cref="TransferImages"/> test images; and
/// the extraction monitor against the attacks and benign keys of <see cref="Monitor"/>.
/// </summary>
public sealed record ModelTheftSettings(IReadOnlyList<int> Budgets, bool WithScores, int TransferImages, MonitorEvaluationOptions Monitor)
{
    public static ModelTheftSettings Quick { get; } = new([500, 2000], WithScores: true, TransferImages: 300, new MonitorEvaluationOptions(BenignKeys: 5, BenignQueries: 1000, AttackBudget: 1000));
    public static ModelTheftSettings Full { get; } = new([500, 2000, 10_000, 50_000], WithScores: true, TransferImages: 1000, new MonitorEvaluationOptions());

    /// <summary>The per-key rate a new API key gets (<c>api-keys add</c>'s default), which sets the attacker's wall time.</summary>
    public const int DefaultKeyImagesPerMinute = 120;
}

/// <summary>
/// Threat I1's model-theft evidence: what a copy of the baseline stolen through its query interface is worth at each query budget
/// (fidelity, and the transfer rate of PGD examples crafted on the copy, the harm a copy does), how long the default per-key quota makes
/// the attacker wait, whether the service's extraction monitor flags the attacks and leaves benign keys alone, and whether the baseline
/// sealed at rest opens with its key-encryption key and refuses a flipped ciphertext byte, a swapped wrapped key and a wrong KEK.
/// </summary>
public sealed class ModelTheftStage : AssessmentStage
{
    public static readonly MetricKey Queries = new("theft.queries");
    public static readonly MetricKey HoursAtQuota = new("theft.hours_at_default_quota");
    public static readonly MetricKey CopyAccuracy = new("theft.copy_accuracy");
    public static readonly MetricKey Fidelity = new("theft.copy_fidelity");
    public static readonly MetricKey Transfer = new("theft.transfer_rate");
    public static readonly MetricKey MonitorAttacks = new("theft.monitor_attacks");
    public static readonly MetricKey MonitorAttacksFlagged = new("theft.monitor_attacks_flagged");
    public static readonly MetricKey MonitorBenignKeys = new("theft.monitor_benign_keys");
    public static readonly MetricKey MonitorBenignFlagged = new("theft.monitor_benign_flagged");
    public static readonly MetricKey SealedOpens = new("theft.sealed_package_opens");
    public static readonly MetricKey SealedTamperTried = new("theft.sealed_tamper_tried");
    public static readonly MetricKey SealedTamperRefused = new("theft.sealed_tamper_refused");

    public override string Name => "model-theft";
    public override IReadOnlyList<string> DependsOn => ["baseline"];
    public override IReadOnlyList<MetricKey> MetricKeys =>
        [Queries, HoursAtQuota, CopyAccuracy, Fidelity, Transfer, MonitorAttacks, MonitorAttacksFlagged, MonitorBenignKeys, MonitorBenignFlagged, SealedOpens, SealedTamperTried, SealedTamperRefused];
    public override object Inputs(StageContext context) => new { context.Profile.ModelTheft };

    public override StageOutput Run(StageContext context, string directory)
    {
        var settings = context.Profile.ModelTheft;
        var package = context.FileOf("baseline", "model");
        using var baseline = ModelPackage.Load(package, context.Key.PublicKey);
        var store = new DatasetStore(context.Options.DataRoot);
        var test = context.Mnist.Test.Select([.. Enumerable.Range(5000, 5000)]);
        var pool = SurrogatePools.Load(SurrogatePools.MnistTest, store, seed: 1);

        var reports = new List<ExtractionReport>();
        foreach (var scores in settings.WithScores ? new[] { false, true } : [false])
        {
            var access = scores ? "scores" : "labels";
            context.Report($"knockoff extraction with {access}, budgets {string.Join(", ", settings.Budgets)}");
            var options = new ExtractionOptions(ExtractionStrategy.Knockoff, settings.Budgets, TransferImages: settings.TransferImages);
            reports.Add(ModelExtraction.RunAsync(new PackageVictim(baseline.Network, scores), pool, SurrogatePools.MnistTest, test, baseline.Network, options,
                new InlineProgress<string>(m => context.Report($"{access}: {m}")), context.CancellationToken).GetAwaiter().GetResult());
        }
        var plot = Path.Combine(directory, "extraction.png");
        ExtractionPlot.Save(plot, "knockoff extraction of the baseline from MNIST test digits", reports);

        context.Report("the extraction monitor against the Jacobian and knockoff attacks and benign keys");
        var pools = new Dictionary<string, IReadOnlyList<float[]>> { [SurrogatePools.MnistTest] = pool, [SurrogatePools.Noise] = SurrogatePools.Load(SurrogatePools.Noise, store, seed: 7) };
        try
        {
            pools[SurrogatePools.FashionMnist] = SurrogatePools.Load(SurrogatePools.FashionMnist, store, seed: 7);
        }
        catch (DatasetException e)
        {
            context.Report($"Fashion-MNIST not available ({e.Message}); its knockoff stream is left out");
        }
        var guard = InputGuard.Calibrate(baseline.Network, context.Mnist.Train, 2000, new SqueezingOptions());
        var monitor = MonitorEvaluation.RunAsync(baseline.Network, guard, context.Mnist.Test, pools, new ExtractionMonitorOptions(), settings.Monitor,
            new InlineProgress<string>(context.Report), context.CancellationToken).GetAwaiter().GetResult();

        context.Report("sealing the baseline and tampering with the sealed copy");
        var sealing = SealedPackageCheck.Run(package, context.Key, Path.Combine(directory, "sealed"));

        var json = Path.Combine(directory, "model-theft.json");
        JsonFormat.Save(json, new { extraction = reports, monitor, sealing });
        var labels = reports[0].Points[^1];
        var strongest = reports.SelectMany(r => r.Points.Where(p => p.Budget == labels.Budget)).MaxBy(p => p.Fidelity)!;
        var hours = labels.Budget / (double)ModelTheftSettings.DefaultKeyImagesPerMinute / 60;
        return new(new Dictionary<string, Metric>
        {
            [Queries.Name] = Metric.Count(labels.Budget, "queries of the largest extraction budget (knockoff, random MNIST test digits)"),
            [HoursAtQuota.Name] = new(hours, "hours", $"that budget's wall time at a new key's default quota of {ModelTheftSettings.DefaultKeyImagesPerMinute} images per minute (budget / rate)"),
            [CopyAccuracy.Name] = Metric.Proportion(labels.SubstituteAccuracy, test.Count, $"the copy stolen with labels only: test accuracy (victim {100 * reports[0].VictimAccuracy:F2}%)"),
            [Fidelity.Name] = Metric.Proportion(strongest.Fidelity, test.Count, $"the best copy's fidelity (agreement with the victim on {test.Count} test images){(settings.WithScores ? ", labels or scores" : ", labels only")}"),
            [Transfer.Name] = Metric.Proportion(strongest.TransferRate, strongest.TransferImages, "PGD-40 examples (eps 0.3) crafted on that copy that fool the victim"),
            [MonitorAttacks.Name] = Metric.Count(monitor.Attacks.Count, $"extraction query streams sent to the monitor ({string.Join(", ", monitor.Attacks.Select(a => a.Name))})"),
            [MonitorAttacksFlagged.Name] = Metric.Count(monitor.Attacks.Count(a => a.FlaggedAt is not null), $"of them flagged ({string.Join("; ", monitor.Attacks.Select(a => $"{a.Name}: {(a.FlaggedAt is { } at ? $"at query {at}" : "missed")}"))})"),
            [MonitorBenignKeys.Name] = Metric.Count(monitor.Benign.Count, $"benign keys, {settings.Monitor.BenignQueries} random test digits each"),
            [MonitorBenignFlagged.Name] = Metric.Count(monitor.BenignFlagged, "benign keys flagged by the monitor (false alarms)"),
            [SealedOpens.Name] = Metric.Count(sealing.Opens ? 1 : 0, "the sealed baseline opens with its KEK to the same weights (1 = yes)"),
            [SealedTamperTried.Name] = Metric.Count(sealing.Tampered.Count, $"tamperings of the sealed package ({string.Join(", ", sealing.Tampered.Select(t => t.Change))})"),
            [SealedTamperRefused.Name] = Metric.Count(sealing.Tampered.Count(t => t.Refused && !t.Decrypted), "of them refused before any decryption"),
        }, new Dictionary<string, string> { ["extraction_plot"] = plot, ["model_theft"] = json });
    }
}
