using TorchSharp;
using SecureMnist.Audit;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>Where the service is on its way to serving: the first load's states; a reload never leaves <see cref="Ready"/>.</summary>
public enum Readiness
{
    LoadingModel,
    Calibrating,
    Ready,
    Failed,
}

/// <summary>
/// The loaded model and its calibrated checks. The service is ready only after the package verified against the
/// trusted key and calibration finished; <see cref="Readiness"/> says where it is, <see cref="Settled"/> completes when the
/// first load has succeeded or failed, and <see cref="NotReadyReason"/> says why it is not ready.
/// </summary>
public sealed class ServiceState : IAsyncDisposable
{
    private volatile InferenceEngine? engine;
    private volatile Readiness readiness = Readiness.LoadingModel;
    private volatile string? failure;
    private readonly TaskCompletionSource settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim reloading = new(1, 1);
    private readonly List<InferenceEngine> retired = [];

    public ServiceState(ServiceOptions options, ApiKeyStore keys, AuditLog audit)
    {
        Options = options;
        Keys = keys;
        Audit = audit;
        Refusals = new RefusalAggregator(audit, options.Refusals);
        if (options.Extraction.Action != ExtractionAction.Off)
        {
            Extraction = new ExtractionMonitor(options.Extraction);
            Extraction.Restore(ExtractionStatusFile.Load(ExtractionStatusPath));
        }
    }

    /// <summary>The per-key extraction monitor; null when monitoring is off.</summary>
    public ExtractionMonitor? Extraction { get; }

    /// <summary>Where flagged keys are kept (beside the API key file).</summary>
    public string ExtractionStatusPath => ExtractionStatusFile.For(Options.ApiKeysPath);

    private readonly Lock extractionFile = new();

    /// <summary>
    /// Feeds one decided input of a key to the monitor. Returns the reason when this input got the key flagged (for the audit record),
    /// after writing the flag beside the API key file.
    /// </summary>
    public string? ObserveForExtraction(Microsoft.AspNetCore.Http.HttpContext context, ReadOnlySpan<float> pixels, Prediction prediction) =>
        ObserveForExtraction(context?.User.FindFirst(ApiKeyAuthentication.KeyIdClaim)?.Value, pixels, prediction);

    /// <summary>Joins a decision's own reason and the monitor's (either may be null).</summary>
    public static string? WithExtraction(string? reason, string? extraction) => extraction is null ? reason : reason is null ? extraction : $"{reason}; {extraction}";

    public string? ObserveForExtraction(string? keyId, ReadOnlySpan<float> pixels, Prediction prediction)
    {
        if (Extraction is not { } monitor || keyId is null || pixels.Length != DigitImage.Pixels) return null;
        var wasFlagged = monitor.Status(keyId).Flagged;
        int? predicted = prediction.Label;
        if (predicted is null && prediction.Probabilities.Count == 10)
        {
            var best = 0;
            for (var i = 1; i < 10; i++) if (prediction.Probabilities[i] > prediction.Probabilities[best]) best = i;
            predicted = best;
        }
        var status = monitor.Observe(keyId, pixels, predicted, prediction.Outcome is AuditOutcome.Rejected or AuditOutcome.Flagged);
        if (wasFlagged || !status.Flagged) return null;
        lock (extractionFile) ExtractionStatusFile.Merge(ExtractionStatusPath, monitor.Statuses());
        return $"model extraction suspected ({status.Signal}): {status.Reason}; action: {Options.Extraction.Action.ToString().ToLowerInvariant()}";
    }

    public ServiceOptions Options { get; }
    public ApiKeyStore Keys { get; }
    public AuditLog Audit { get; }
    /// <summary>Where refused unauthenticated requests are counted before they reach the audit log, a record per address and window.</summary>
    public RefusalAggregator Refusals { get; }
    public InferenceEngine? Engine => engine;
    public Readiness Readiness => readiness;

    /// <summary>Completes when the first load has finished, ready or failed.</summary>
    public Task Settled => settled.Task;

    public string? NotReadyReason => readiness switch
    {
        Readiness.LoadingModel => "loading the model",
        Readiness.Calibrating => "calibrating input checks",
        Readiness.Failed => $"model not loaded: {failure}",
        _ => null,
    };
    public string? ModelDigest => engine?.Model.ManifestSha256;

    /// <summary>Waits until the model is loaded; throws with the reason when loading failed or took longer than <paramref name="timeout"/>.</summary>
    public async Task WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await Settled.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the service did not become ready within {timeout.TotalSeconds:0} s ({NotReadyReason})");
        }
        if (readiness == Readiness.Failed) throw new InvalidOperationException(NotReadyReason);
    }

    /// <summary>Verifies and loads the package, then calibrates the input statistics and the squeezing detector.</summary>
    public void Load()
    {
        var (fresh, error) = Build();
        if (fresh is not null)
        {
            engine = fresh;
            readiness = Readiness.Ready;
        }
        else
        {
            failure = error;
            readiness = Readiness.Failed;
        }
        settled.TrySetResult();
    }

    /// <summary>
    /// Verifies and loads the package folder again (say, after a newly signed package was put in place) and switches to
    /// it; requests already queued finish on the old model. On any failure the service keeps its current model.
    /// Returns null on success, otherwise why the new package was refused.
    /// </summary>
    public async Task<string?> ReloadAsync()
    {
        if (!await reloading.WaitAsync(0).ConfigureAwait(false)) return "a reload is already running";
        try
        {
            var (fresh, error) = Build();
            if (fresh is null) return error;
            var previous = engine;
            engine = fresh;
            if (previous is not null)
            {
                lock (retired) retired.Add(previous);
                _ = Task.Run(async () =>
                {
                    await Task.Delay(TimeSpan.FromSeconds(Options.RequestTimeoutSeconds + 1)).ConfigureAwait(false);
                    await Retire(previous).ConfigureAwait(false);
                });
            }
            return null;
        }
        finally
        {
            reloading.Release();
        }
    }

    private (InferenceEngine? Engine, string? Error) Build()
    {
        VerifiedModel? model = null;
        try
        {
            var key = TrustedPublicKey.FromFile(Options.PublicKeyPath);
            using (var kek = KeyEncryptionKey.LoadOrFromEnvironment(Options.KekLocation))
                model = ModelPackage.Load(Options.ModelDirectory, key, kek);
            // Verified in float32 above; converted after, so the digest checks saw the signed bytes. The input checks are
            // calibrated below on the converted model, so the detector's threshold matches what serves.
            if (Options.Precision.Resolve() == InferencePrecision.Bf16) model.Network.to(TorchSharp.torch.ScalarType.BFloat16);
            if (engine is null) readiness = Readiness.Calibrating;
            var train = new DatasetStore(Options.DataRoot).Load("mnist").Train;
            var guard = InputGuard.Calibrate(model.Network, train, Options.SqueezeCalibrationImages, Options.Squeezing);
            return (new InferenceEngine(model, guard.Squeezing, guard.Statistics, Options.Policy, Options.Batching), null);
        }
#pragma warning disable CA1031 // any failure leaves the service as it was, with the reason on /readyz or in the reload answer
        catch (Exception e)
#pragma warning restore CA1031
        {
            model?.Dispose();
            return (null, e.Message);
        }
    }

    private async Task Retire(InferenceEngine old)
    {
        lock (retired)
            if (!retired.Remove(old)) return;
        await old.DisposeAsync().ConfigureAwait(false);
        old.Model.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        InferenceEngine[] leftovers;
        lock (retired) leftovers = [.. retired];
        foreach (var old in leftovers) await Retire(old).ConfigureAwait(false);
        reloading.Dispose();
        if (engine is { } running)
        {
            await running.DisposeAsync().ConfigureAwait(false);
            running.Model.Dispose();
        }
        await Refusals.DisposeAsync().ConfigureAwait(false);
        await Audit.DisposeAsync().ConfigureAwait(false);
    }
}
