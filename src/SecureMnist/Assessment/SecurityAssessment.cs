using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Poisoning;
using SecureMnist.Data;
using SecureMnist.Defenses;
using SecureMnist.Evaluation;
using SecureMnist.IO;
using SecureMnist.Reporting;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Assessment;

/// <summary>What the service smoke check measured (the check itself lives with the service).</summary>
public delegate Task<IReadOnlyDictionary<string, Metric>> ServiceSmokeCheck(string packageDirectory, string publicKeyPath, string workDirectory,
    Dataset mnist, CancellationToken cancellationToken);

/// <summary>
/// How to run an assessment. <paramref name="Stages"/> null runs every stage; otherwise only those listed and the stages they
/// build on (<see cref="SecurityAssessment.WithPrerequisites"/>); <paramref name="Force"/> redoes what runs
/// (<see cref="SecurityAssessment.Forces"/>).
/// </summary>
public sealed record AssessmentOptions(AssessmentProfile Profile, string OutputDirectory, string DataRoot, string SigningKeyPath, bool Force,
    string? RepositoryRoot, IReadOnlyList<string>? Stages = null);

/// <summary>One line of progress: which stage, and what it is doing.</summary>
public sealed record AssessmentProgress(string Stage, int Index, int Stages, string Message, bool Cached = false, bool Finished = false);

/// <summary>Everything an assessment produced, in stage order.</summary>
public sealed record AssessmentResults(string Profile, DateTimeOffset StartedUtc, double Seconds, string CodeVersion, MachineInfo Machine,
    IReadOnlyDictionary<string, string> DatasetDigests, IReadOnlyList<StageResult> Stages, IReadOnlyList<string>? SelectedStages = null)
{
    /// <summary>True when some stages were neither selected (assess --stages) nor in the cache: their figures are absent, not failed.</summary>
    public bool Partial => SelectedStages is not null && Stages.Count < SecurityAssessment.StageNames.Length;

    public IReadOnlyDictionary<string, Metric> Metrics =>
        Stages.SelectMany(s => s.Metrics).ToDictionary(kv => kv.Key, kv => kv.Value);
}

/// <summary>
/// The end-to-end assessment: verify data, train the baseline, evaluate, attack, train defended models and check them for gradient
/// masking, poison and detect, sign and tamper, and smoke-test the service. Each stage is one <see cref="AssessmentStage"/>; this
/// runner caches each by its fingerprint (its inputs, the code version and the stages it reads) and resumes interrupted ones.
/// </summary>
public sealed class SecurityAssessment(AssessmentOptions options, ServiceSmokeCheck serviceCheck, IProgress<AssessmentProgress>? progress = null)
{
    /// <summary>Every stage, in the order they run.</summary>
    public static IReadOnlyList<AssessmentStage> Stages { get; } =
    [
        new DataStage(), new BaselineStage(), new EvasionStage(), new AdversarialTrainingStage(), new RobustnessChecksStage(), new PoisoningStage(),
        new PoisonDefensesStage(), new PoisonGridStage(), new PrivacyStage(), new ModelTheftStage(), new PackagingStage(), new ServiceStage(), new DependenciesStage(),
    ];

    public static readonly string[] StageNames = Stages.Select(s => s.Name).ToArray();

    /// <summary>
    /// The code a result was computed by: the library's module version id, which a deterministic build derives from its content, so
    /// a result survives a rebuild of the same code and no change of it.
    /// </summary>
    public static string CodeFingerprint { get; } = typeof(AssessmentStage).Assembly.ManifestModule.ModuleVersionId.ToString("N");

    private static AssessmentStage StageNamed(string name) => Stages.SingleOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"unknown stage '{name}'; the stages are {string.Join(", ", StageNames)}");

    /// <summary>The stages to run for a selection: the selected ones and everything they build on, in the assessment's order.</summary>
    public static IReadOnlyList<string> WithPrerequisites(IEnumerable<string> selection)
    {
        ArgumentNullException.ThrowIfNull(selection);
        var needed = new HashSet<string>(StringComparer.Ordinal);
        void Add(string stage)
        {
            var found = StageNamed(stage);
            if (!needed.Add(stage)) return;
            foreach (var prerequisite in found.DependsOn) Add(prerequisite);
        }
        foreach (var stage in selection) Add(stage);
        if (needed.Count == 0) throw new ArgumentException("no stage selected");
        return StageNames.Where(needed.Contains).ToArray();
    }

    /// <summary>
    /// Whether --force redoes a stage: every stage without --stages; with it, the stages named, not the ones they build on
    /// (those run only when the cache lacks them).
    /// </summary>
    public static bool Forces(AssessmentOptions options, string stage)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Force && (options.Stages is null || options.Stages.Contains(stage));
    }

    private readonly IReadOnlyList<string> selected = options.Stages is { } stages ? WithPrerequisites(stages) : StageNames;

    private readonly StageStore store = new(options.OutputDirectory);
    private readonly List<StageResult> finished = [];
    private readonly HashSet<string> redone = [];

    public AssessmentResults Run(CancellationToken cancellationToken = default)
    {
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var (key, _) = TrainingPipeline.OpenOrCreateKey(options.SigningKeyPath, createIfMissing: true);
        using (key)
        {
            var mnist = new DatasetStore(options.DataRoot).Load("mnist");
            foreach (var stage in Stages)
            {
                var upstream = stage.DependsOn.ToDictionary(d => d, d => finished.SingleOrDefault(f => f.Stage == d));
                if (upstream.Values.Any(u => u is null)) continue;
                var context = new StageContext(options, key, mnist, store, serviceCheck, upstream.ToDictionary(kv => kv.Key, kv => kv.Value!),
                    message => Report(stage.Name, message), cancellationToken);
                RunStage(stage, context, upstream.Values.Select(u => u!).ToArray());
            }
            return new AssessmentResults(options.Profile.Name, started, clock.Elapsed.TotalSeconds, CodeVersion.Current(), MachineInfo.Current(TorchSharp.torch.get_num_threads()),
                mnist.Digests, finished, options.Stages is null ? null : selected);
        }
    }

    /// <summary>
    /// Runs a stage, or takes it from the cache. A stage not selected (assess --stages) is only taken from the cache, so the
    /// report keeps what an earlier run finished.
    /// </summary>
    private void RunStage(AssessmentStage stage, StageContext context, StageResult[] upstream)
    {
        var name = stage.Name;
        var index = Array.IndexOf(StageNames, name) + 1;
        var fingerprint = StageStore.Fingerprint(name, new { profile = options.Profile.Name, code = CodeFingerprint, settings = stage.Inputs(context) },
            upstream.Select(u => u.Fingerprint).ToArray());
        if (!selected.Contains(name))
        {
            // A stage built on one redone in this invocation would describe the old result: leave it out.
            var kept = upstream.Any(u => redone.Contains(u.Fingerprint)) ? null : store.Finished(name, fingerprint);
            progress?.Report(new AssessmentProgress(name, index, StageNames.Length, kept is null ? "not selected, no current result in the cache: left out" : $"not selected; cached ({kept.Seconds:F0} s when it ran)",
                Cached: kept is not null, Finished: true));
            if (kept is not null) finished.Add(kept);
            return;
        }
        var force = Forces(options, name);
        if (!force && store.Finished(name, fingerprint) is { } cached)
        {
            progress?.Report(new AssessmentProgress(name, index, StageNames.Length, $"cached ({cached.Seconds:F0} s when it ran)", Cached: true, Finished: true));
            finished.Add(cached);
            return;
        }
        if (force && Directory.Exists(store.Directory(name))) Directory.Delete(store.Directory(name), recursive: true);
        var resumed = store.Begin(name, fingerprint);
        progress?.Report(new AssessmentProgress(name, index, StageNames.Length, resumed ? "resuming" : "running"));
        var clock = Stopwatch.StartNew();
        var output = stage.Run(context, store.Directory(name));
        var undeclared = output.Metrics.Keys.Where(k => !stage.Declares(k)).ToList();
        if (undeclared.Count > 0)
            throw new InvalidOperationException($"stage '{name}' produced metrics it does not declare: {string.Join(", ", undeclared)}");
        var result = new StageResult(name, fingerprint, clock.Elapsed.TotalSeconds, DateTimeOffset.UtcNow, output.Metrics,
            output.Files.ToDictionary(kv => kv.Key, kv => Path.GetRelativePath(options.OutputDirectory, kv.Value)), output.Details);
        store.Complete(result);
        redone.Add(fingerprint);
        progress?.Report(new AssessmentProgress(name, index, StageNames.Length, $"done in {result.Seconds:F0} s", Finished: true));
        finished.Add(result);
    }

    private void Report(string stage, string message) =>
        progress?.Report(new AssessmentProgress(stage, Array.IndexOf(StageNames, stage) + 1, StageNames.Length, message));
}
