using SecureMnist.IO;
using SecureMnist.Modeling;
using SecureMnist.Privacy;
using SecureMnist.Reporting;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>
/// How the privacy stage measures and defends: a DP-SGD model at <see cref="TargetEpsilon"/>, membership inference on balanced sets of
/// <see cref="MembershipPerSide"/> members and non-members (LiRA with <see cref="Shadows"/> shadows; 0: the loss attack only), and model
/// inversion with <see cref="InversionSteps"/> steps.
/// </summary>
public sealed record PrivacySettings(int DpEpochs, double TargetEpsilon, double Delta, int MembershipPerSide, int Shadows, int InversionSteps)
{
    public static PrivacySettings Quick { get; } = new(DpEpochs: 10, TargetEpsilon: 3, Delta: 1e-5, MembershipPerSide: 2000, Shadows: 0, InversionSteps: 200);
    public static PrivacySettings Full { get; } = new(DpEpochs: 40, TargetEpsilon: 3, Delta: 1e-5, MembershipPerSide: 5000, Shadows: 8, InversionSteps: 500);
}

/// <summary>
/// Threat I1's evidence: how much the baseline leaks about its training set (membership inference, model inversion), and the
/// defence: a DP-SGD model (the recipe of <c>train --dp</c>, <see cref="PrivateRecipes"/>: ScatterNet + linear), its accuracy at its epsilon,
/// and the same attacks against it, whose success must stay within the bound e^epsilon FPR + delta.
/// </summary>
public sealed class PrivacyStage : AssessmentStage
{
    public static readonly MetricKey DpAccuracy = new("privacy.dp_accuracy");
    public static readonly MetricKey DpEpsilon = new("privacy.dp_epsilon");
    public static readonly MetricKey BaselineAuc = new("privacy.baseline_membership_auc");
    public static readonly MetricKey BaselineTpr = new("privacy.baseline_membership_tpr_at_0_1_fpr");
    public static readonly MetricKey DpAuc = new("privacy.dp_membership_auc");
    public static readonly MetricKey DpTpr = new("privacy.dp_membership_tpr_at_0_1_fpr");
    public static readonly MetricKey DpOutsideBound = new("privacy.dp_attacks_outside_bound");
    public static readonly MetricKey InversionCloserToMembers = new("privacy.inversion_closer_to_members");

    public override string Name => "privacy";
    public override IReadOnlyList<string> DependsOn => ["baseline"];
    public override IReadOnlyList<MetricKey> MetricKeys => [DpAccuracy, DpEpsilon, BaselineAuc, BaselineTpr, DpAuc, DpTpr, DpOutsideBound, InversionCloserToMembers];
    public override object Inputs(StageContext context) => new { context.Profile.TrainSubset, context.Profile.Privacy, PrivateRecipes.Architecture };

    public override StageOutput Run(StageContext context, string directory)
    {
        var settings = context.Profile.Privacy;
        var (learningRate, batchSize) = PrivateRecipes.For(PrivateRecipes.Architecture, context.Profile.TrainSubset ?? context.Mnist.Train.Count);
        var dpOptions = new TrainingOptions
        {
            Architecture = PrivateRecipes.Architecture, TrainSubset = context.Profile.TrainSubset, Epochs = settings.DpEpochs, Optimizer = "sgd", LearningRate = learningRate,
            BatchSize = batchSize, Schedule = "constant",
            Privacy = new PrivacyOptions { TargetEpsilon = settings.TargetEpsilon, Delta = settings.Delta, MaxGradientNorm = PrivateRecipes.MaxGradientNorm },
        };
        var dp = context.Train(dpOptions, context.Mnist, directory, "dp-sgd");
        var guarantee = dp.Training.Record.Privacy!;
        dp.Training.Network.Dispose();

        using var baseline = ModelPackage.Load(context.FileOf("baseline", "model"), context.Key.PublicKey);
        using var dpModel = ModelPackage.Load(dp.PackageDirectory, context.Key.PublicKey);
        var membership = new MembershipOptions(settings.MembershipPerSide, settings.Shadows);
        MembershipReport Attack(LoadedModel model, string name)
        {
            context.Report($"membership inference on the {name} model");
            var report = new MembershipExperiment(membership, context.Mnist, Path.Combine(directory, $"shadows-{name}"))
                .Run(name, model.Network, model.Manifest.Training!, new InlineProgress<string>(m => context.Report($"{name}: {m}")), context.CancellationToken);
            MembershipPlot.Save(Path.Combine(directory, $"membership-{name}.png"), report);
            return report;
        }
        var onBaseline = Attack(baseline, "baseline");
        var onDp = Attack(dpModel, "dp");

        context.Report("model inversion of the baseline");
        var members = Trainer.Split(baseline.Manifest.Training!.Options, context.Mnist).Train;
        var inversion = ModelInversion.Run(baseline.Network, members, context.Mnist.Test, new InversionOptions(Steps: settings.InversionSteps));
        var grid = Path.Combine(directory, "inversion.png");
        InversionGrid.Save(grid, $"model inversion of the baseline ({settings.InversionSteps} steps)", inversion);

        var json = Path.Combine(directory, "privacy.json");
        JsonFormat.Save(json, new
        {
            guarantee, dpTestAccuracy = dp.Training.Test.Accuracy, baseline = onBaseline, dp = onDp,
            inversion = inversion.Classes.Select(c => new { c.Label, c.Probability, c.NearestMemberL2, c.NearestNonMemberL2, c.BestMemberSsim, c.BestNonMemberSsim }),
        });
        static MembershipAttackResult Strongest(MembershipReport report) => report.Attacks.MaxBy(a => a.TprAtFpr0001)!;
        var strongestBaseline = Strongest(onBaseline);
        var strongestDp = Strongest(onDp);
        var perSide = settings.MembershipPerSide;
        return new(new Dictionary<string, Metric>
        {
            [DpAccuracy.Name] = Metric.Proportion(dp.Training.Test.Accuracy, dp.Training.Test.Images, $"DP-SGD model ({dpOptions.Architecture}) clean test accuracy at ({guarantee.Epsilon:F2}, {guarantee.Delta:G2})-DP"),
            [DpEpsilon.Name] = new(guarantee.Epsilon, "epsilon", $"privacy spent by DP-SGD (delta {guarantee.Delta:G2}, noise multiplier {guarantee.NoiseMultiplier:F3}, {guarantee.Steps} steps, RDP accountant)"),
            [BaselineAuc.Name] = new(onBaseline.Attacks.Max(a => a.Auc), "auc", $"baseline: best membership-inference ROC AUC ({perSide} members vs {perSide} non-members; 0.5 is chance)"),
            [BaselineTpr.Name] = Metric.Proportion(strongestBaseline.TprAtFpr0001, perSide, $"baseline: membership TPR at 0.1% FPR ({strongestBaseline.Attack})"),
            [DpAuc.Name] = new(onDp.Attacks.Max(a => a.Auc), "auc", "DP-SGD model: best membership-inference ROC AUC"),
            [DpTpr.Name] = Metric.Proportion(strongestDp.TprAtFpr0001, perSide, $"DP-SGD model: membership TPR at 0.1% FPR ({strongestDp.Attack}; bound {100 * onDp.Bound!.MaxTruePositiveRate(0.001):F2}%)"),
            [DpOutsideBound.Name] = Metric.Count(onDp.Attacks.Count(a => !onDp.Bound.Holds(a)), "DP-SGD model: attacks whose TPR at 0.1% or 1% FPR exceeds e^epsilon FPR + delta (must be 0)"),
            [InversionCloserToMembers.Name] = Metric.Count(inversion.CloserToMembers, $"baseline inversion: classes (of 10) whose reconstruction is nearer a member than any non-member ({inversion.ReferencePerClass} each; about 5 is no leakage)"),
        }, new Dictionary<string, string>
        {
            ["dp_model"] = dp.PackageDirectory, ["privacy"] = json, ["inversion"] = grid,
            ["membership_baseline"] = Path.Combine(directory, "membership-baseline.png"), ["membership_dp"] = Path.Combine(directory, "membership-dp.png"),
        });
    }
}
