using System.Text.Json.Nodes;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>What a stage produced: metrics by key, files by name (absolute while running), and free-form details.</summary>
public sealed record StageOutput(IReadOnlyDictionary<string, Metric> Metrics, IReadOnlyDictionary<string, string> Files, JsonNode? Details = null);

/// <summary>
/// The name of a metric a stage produces, e.g. "baseline.clean_accuracy". A key for each defended model of a profile is written
/// with "defense_*" as its prefix; <see cref="For"/> fills it in.
/// </summary>
public readonly record struct MetricKey(string Name)
{
    public const string DefensePrefix = "defense_*";

    /// <summary>The key for one defence: "defense_*.x" for "pgd" becomes "defense_pgd.x".</summary>
    public string For(string defense) => Name.Replace(DefensePrefix, DefensePrefixOf(defense), StringComparison.Ordinal);

    /// <summary>The metric prefix of a defence's figures: "defense_" and the defence with '-' as '_'.</summary>
    public static string DefensePrefixOf(string defense) => $"defense_{defense.Replace('-', '_')}";

    /// <summary>The defended models' prefixes ("defense_pgd", ...) among produced keys, in order; with a suffix, only of keys that end with it.</summary>
    public static IReadOnlyList<string> DefencePrefixesIn(IEnumerable<string> keys, string suffix = "")
    {
        ArgumentNullException.ThrowIfNull(keys);
        return keys.Where(k => k.StartsWith("defense_", StringComparison.Ordinal) && k.EndsWith(suffix, StringComparison.Ordinal) && k.Contains('.', StringComparison.Ordinal))
            .Select(k => k[..k.IndexOf('.', StringComparison.Ordinal)]).Distinct().Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Whether a produced key (or a cited pattern) is this declared key, with "*" standing for one defence.</summary>
    public bool Matches(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!Name.Contains('*', StringComparison.Ordinal)) return key == Name;
        var star = Name.IndexOf('*', StringComparison.Ordinal);
        var (head, tail) = (Name[..star], Name[(star + 1)..]);
        return key.Length > head.Length + tail.Length - 1 && key.StartsWith(head, StringComparison.Ordinal) && key.EndsWith(tail, StringComparison.Ordinal) &&
            !key[head.Length..^tail.Length].Contains('.', StringComparison.Ordinal);
    }

    public override string ToString() => Name;
}

/// <summary>
/// One stage of the assessment. It declares its name, the stages it reads, the inputs that key its cache (the runner adds the code
/// version and the upstream stages' fingerprints) and the metric keys it produces; the runner refuses a stage that produces a key it
/// did not declare, so the threat model can cite keys that are checked to exist.
/// </summary>
public abstract class AssessmentStage
{
    public abstract string Name { get; }

    public virtual IReadOnlyList<string> DependsOn => [];

    /// <summary>The settings the stage's result depends on, besides the code and the upstream stages.</summary>
    public abstract object Inputs(StageContext context);

    public abstract IReadOnlyList<MetricKey> MetricKeys { get; }

    public abstract StageOutput Run(StageContext context, string directory);

    /// <summary>
    /// Runs <paramref name="part"/> for each defended model of the profile and merges what they produce. Each part is kept once done,
    /// so an interrupted stage resumes at the next defence (hours apart in the full profile).
    /// </summary>
    protected StageOutput PerDefense(StageContext context, Func<DefenseRecipe, StageOutput> part)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(part);
        var metrics = new Dictionary<string, Metric>();
        var files = new Dictionary<string, string>();
        var details = new JsonObject();
        foreach (var recipe in context.Profile.Defenses)
        {
            var output = context.Store.Part(Name, recipe.Defense, () => part(recipe));
            foreach (var (k, v) in output.Metrics) metrics[k] = v;
            foreach (var (k, v) in output.Files) files[k] = v;
            details[recipe.Defense] = output.Details?.DeepClone();
        }
        return new(metrics, files, details);
    }

    /// <summary>Whether <paramref name="key"/> is one of the declared metric keys.</summary>
    public bool Declares(string key) => MetricKeys.Any(k => k.Matches(key));
}

/// <summary>What a running stage may read and use: the run's settings, key and data, the stages it depends on, and progress.</summary>
public sealed class StageContext(AssessmentOptions options, SigningKey key, Dataset mnist, StageStore store, ServiceSmokeCheck serviceCheck,
    IReadOnlyDictionary<string, StageResult> upstream, Action<string> report, CancellationToken cancellationToken)
{
    public AssessmentOptions Options { get; } = options;
    public AssessmentProfile Profile => Options.Profile;
    public SigningKey Key { get; } = key;
    public Dataset Mnist { get; } = mnist;
    public StageStore Store { get; } = store;
    public ServiceSmokeCheck ServiceCheck { get; } = serviceCheck;
    public CancellationToken CancellationToken { get; } = cancellationToken;

    /// <summary>A finished stage this one depends on.</summary>
    public StageResult Upstream(string stage) => upstream.TryGetValue(stage, out var result)
        ? result : throw new InvalidOperationException($"stage '{stage}' is not among the finished stages this one depends on");

    /// <summary>The absolute path of a file a finished stage produced.</summary>
    public string FileOf(string stage, string file) => Path.Combine(Options.OutputDirectory, Upstream(stage).Files[file]);

    public void Report(string message) => report(message);

    public IProgress<TrainingProgress> TrainingReporter(string what) => new InlineProgress<TrainingProgress>(p =>
        Report($"{what}: epoch {p.Epoch}/{p.Epochs}, batch {p.Batch}/{p.Batches}, {p.Phase}"));

    /// <summary>The attack settings of the profile: eps, PGD steps, step size and restarts.</summary>
    public AttackSettings Settings => new() { Epsilon = Profile.Epsilon, StepSize = Profile.PgdStepSize, Steps = Profile.PgdSteps, Restarts = Profile.Restarts };

    /// <summary>Trains and signs a model in the stage's folder, resuming an interrupted run of it.</summary>
    public PackagedTraining Train(TrainingOptions training, Dataset data, string directory, string name)
    {
        var runDirectory = Path.Combine(directory, "run-" + name);
        var resume = File.Exists(Path.Combine(runDirectory, Checkpoint.StateFile));
        return TrainingPipeline.TrainAndPackage(training, data, runDirectory, Path.Combine(directory, name), Key, resume, TrainingReporter(name), CancellationToken);
    }
}

