using System.Threading.Channels;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Audit;
using SecureMnist.Defenses;
using SecureMnist.Security;
using static TorchSharp.torch;

namespace SecureMnist.Serving;

/// <summary>What to do with an input the adversarial detector flags.</summary>
public enum AdversarialAction
{
    /// <summary>Answer, but mark the decision as flagged.</summary>
    Flag,
    /// <summary>Refuse to answer.</summary>
    Reject,
    /// <summary>Do not run the detector (its two extra forward passes); for when throughput matters more.</summary>
    Off,
}

/// <summary>Number format of the model's weights and activations while serving.</summary>
public enum InferencePrecision
{
    /// <summary>32-bit floats, as the model was trained and evaluated.</summary>
    Fp32,
    /// <summary>
    /// bfloat16 weights and activations (logits and everything after them in float32): on CPUs with AVX-512 BF16 the
    /// convolutions run several times faster; predictions can differ from float32 on inputs near a decision boundary.
    /// </summary>
    Bf16,
    /// <summary>
    /// bf16 where the CPU computes in it natively (AVX-512 BF16 or AMX-BF16), fp32 elsewhere: without those instructions
    /// libtorch emulates bfloat16 and gains nothing. <c>bench precision</c> shows the two decide alike.
    /// </summary>
    Auto,
}

public static class InferencePrecisions
{
    /// <summary>The CPU extensions with which libtorch computes bfloat16 natively.</summary>
    public static IReadOnlyList<string> NativeBf16Extensions { get; } = ["avx512_bf16", "amx_bf16"];

    /// <summary>What <paramref name="requested"/> runs as on a CPU with these /proc/cpuinfo extensions: Auto becomes bf16 or fp32.</summary>
    public static InferencePrecision Resolve(this InferencePrecision requested, IReadOnlyCollection<string> cpuExtensions)
    {
        ArgumentNullException.ThrowIfNull(cpuExtensions);
        if (requested != InferencePrecision.Auto) return requested;
        return NativeBf16Extensions.Any(cpuExtensions.Contains) ? InferencePrecision.Bf16 : InferencePrecision.Fp32;
    }

    /// <summary>What <paramref name="requested"/> runs as on this machine.</summary>
    public static InferencePrecision Resolve(this InferencePrecision requested) => requested.Resolve(Training.MachineInfo.CpuExtensions());
}

/// <summary>The service's decision rules.</summary>
/// <param name="AbstainBelow">Answers with a top probability below this are withheld (abstain).</param>
public sealed record DecisionPolicy(double AbstainBelow = 0.9, AdversarialAction OnAdversarial = AdversarialAction.Flag)
{
    public void Validate()
    {
        if (AbstainBelow is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(AbstainBelow), AbstainBelow, "the abstain threshold must be in [0, 1]");
    }
}

/// <summary>
/// How concurrent requests are grouped into one forward pass, and how many may be in flight (queued or running).
/// With <see cref="MaxDelayMilliseconds"/> 0 (the default) the worker runs whatever has gathered as soon as it is free:
/// under load, requests gather while the previous batch computes, so batches grow by themselves and nothing waits on a
/// timer. A positive delay holds a partial batch open that long for more to arrive.
/// </summary>
public sealed record BatchingOptions(int MaxBatch = 64, double MaxDelayMilliseconds = 0, int QueueCapacity = 256)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBatch, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxDelayMilliseconds);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueCapacity, 1);
    }
}

/// <summary>The service's answer for one input.</summary>
/// <param name="Label">The predicted digit; null when the service abstains or rejects.</param>
/// <param name="Saliency">|d logit / d input| scaled to [0, 1], 784 values, when an explanation was asked for.</param>
public sealed record Prediction(
    AuditOutcome Outcome, int? Label, double Confidence, IReadOnlyList<float> Probabilities,
    double? SqueezeScore, IReadOnlyList<float>? Saliency, string? Reason);

/// <summary>Thrown when the inference queue is full; the caller should answer 503 rather than wait.</summary>
public sealed class InferenceQueueFullException() : Exception("the inference queue is full; retry shortly");

/// <summary>
/// Runs a verified model behind the decision policy. Inputs are first checked against the statistics of real digits
/// (out-of-distribution inputs are rejected without touching the model); accepted inputs wait in a bounded queue and
/// a single worker runs whatever has gathered (up to <see cref="BatchingOptions.MaxBatch"/>) in one forward pass,
/// together with the feature-squeezing passes, so concurrent requests share the cost.
/// </summary>
public sealed class InferenceEngine : IAsyncDisposable
{
    private readonly NetworkClassifier classifier;
    private readonly Channel<Request> queue;
    private readonly Task worker;
    private readonly BatchingOptions batching;
    private int inFlight;
    private long batches;
    private long batchedInputs;

    private sealed record Request(float[] Pixels, bool Explain, TaskCompletionSource<Prediction> Done);

    public InferenceEngine(VerifiedModel model, FeatureSqueezing squeezing, DigitStatistics statistics, DecisionPolicy policy, BatchingOptions batching)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(batching);
        policy.Validate();
        batching.Validate();
        Model = model;
        Squeezing = squeezing ?? throw new ArgumentNullException(nameof(squeezing));
        Statistics = statistics ?? throw new ArgumentNullException(nameof(statistics));
        Policy = policy;
        this.batching = batching;
        classifier = new NetworkClassifier(model.Network);
        Precision = model.Network.parameters().FirstOrDefault()?.dtype == ScalarType.BFloat16 ? InferencePrecision.Bf16 : InferencePrecision.Fp32;
        queue = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
        worker = Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public VerifiedModel Model { get; }

    /// <summary>The number format the model serves in (never <see cref="InferencePrecision.Auto"/>: that is resolved before the engine is built).</summary>
    public InferencePrecision Precision { get; }

    /// <summary>Whether the network gives input gradients (saliency maps); an ONNX model run by ONNX Runtime does not.</summary>
    public bool HasGradients => Model.Network is not Interop.OnnxNetwork;
    public FeatureSqueezing Squeezing { get; }
    public DigitStatistics Statistics { get; }
    public DecisionPolicy Policy { get; }

    /// <summary>Forward passes run so far; with <see cref="BatchedInputs"/> it gives the mean batch size.</summary>
    public long Batches => Interlocked.Read(ref batches);

    /// <summary>Inputs decided by the model so far.</summary>
    public long BatchedInputs => Interlocked.Read(ref batchedInputs);

    /// <summary>Inputs queued or in the forward pass now.</summary>
    public int QueueLength => Volatile.Read(ref inFlight);

    /// <summary>
    /// Decides on one 28x28 input. Out-of-distribution inputs are rejected at once; otherwise the input joins the queue.
    /// Throws <see cref="InferenceQueueFullException"/> when the queue is full.
    /// </summary>
    public Task<Prediction> PredictAsync(float[] pixels, bool explain, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != DigitImage.Pixels) throw new ArgumentException($"expected {DigitImage.Pixels} pixels", nameof(pixels));
        if (Statistics.Check(pixels) is { } reason)
            return Task.FromResult(new Prediction(AuditOutcome.Rejected, null, 0, [], null, null, $"not a digit: {reason}"));
        // Bounded work: beyond the capacity callers are told to come back instead of piling up memory and latency.
        if (Interlocked.Increment(ref inFlight) > batching.QueueCapacity)
        {
            Interlocked.Decrement(ref inFlight);
            throw new InferenceQueueFullException();
        }
        var done = new TaskCompletionSource<Prediction>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!queue.Writer.TryWrite(new Request(pixels, explain, done)))
        {
            Interlocked.Decrement(ref inFlight);
            throw new ObjectDisposedException(nameof(InferenceEngine));
        }
        return done.Task.WaitAsync(cancellationToken);
    }

    private async Task Work()
    {
        var batch = new List<Request>(batching.MaxBatch);
        while (await queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < batching.MaxBatch && queue.Reader.TryRead(out var request)) batch.Add(request);
            if (batch.Count == 0) continue;
            if (batching.MaxDelayMilliseconds > 0) await Gather(batch).ConfigureAwait(false);
            try
            {
                var results = Run(batch);
                Interlocked.Increment(ref batches);
                Interlocked.Add(ref batchedInputs, batch.Count);
                Interlocked.Add(ref inFlight, -batch.Count);
                for (var i = 0; i < batch.Count; i++) batch[i].Done.TrySetResult(results[i]);
            }
#pragma warning disable CA1031 // one bad batch must fail its callers, not kill the worker
            catch (Exception e)
#pragma warning restore CA1031
            {
                Interlocked.Add(ref inFlight, -batch.Count);
                foreach (var request in batch) request.Done.TrySetException(e);
            }
        }
    }

    /// <summary>Holds a partial batch open until it is full or <see cref="BatchingOptions.MaxDelayMilliseconds"/> has passed.</summary>
    private async Task Gather(List<Request> batch)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(batching.MaxDelayMilliseconds));
        while (batch.Count < batching.MaxBatch)
        {
            if (queue.Reader.TryRead(out var request)) { batch.Add(request); continue; }
            try
            {
                if (!await queue.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) return;
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private Prediction[] Run(List<Request> batch)
    {
        using var scope = NewDisposeScope();
        var count = batch.Count;
        var flat = new float[count * DigitImage.Pixels];
        for (var i = 0; i < count; i++) batch[i].Pixels.CopyTo(flat, i * DigitImage.Pixels);
        var images = tensor(flat).reshape(count, 1, DigitImage.Side, DigitImage.Side);
        Tensor probabilities;
        double[]? scores = null;
        if (Policy.OnAdversarial == AdversarialAction.Off) probabilities = classifier.Probabilities(images);
        else (probabilities, scores) = Squeezing.ProbabilitiesAndScores(classifier, images);
        var probabilityRows = probabilities.data<float>().ToArray();
        var explainIndices = Enumerable.Range(0, count).Where(i => batch[i].Explain).ToArray();
        // An ONNX model gives no gradients: its explanations are left out rather than failing the batch they share with others.
        var saliency = explainIndices.Length == 0 || !HasGradients ? null : Saliency(images, explainIndices);
        var results = new Prediction[count];
        for (var i = 0; i < count; i++)
        {
            var row = probabilityRows.AsSpan(i * classifier.ClassCount, classifier.ClassCount).ToArray();
            var label = Array.IndexOf(row, row.Max());
            var confidence = (double)row[label];
            var map = saliency?.GetValueOrDefault(i);
            results[i] = Decide(label, confidence, row, scores?[i], map);
        }
        return results;
    }

    private Prediction Decide(int label, double confidence, float[] probabilities, double? squeezeScore, float[]? saliency)
    {
        if (squeezeScore > Squeezing.Threshold)
        {
            var reason = $"feature squeezing moved the prediction by {squeezeScore:F3} (L1; threshold {Squeezing.Threshold:F3}): likely adversarial";
            return Policy.OnAdversarial == AdversarialAction.Reject
                ? new Prediction(AuditOutcome.Rejected, null, confidence, probabilities, squeezeScore, saliency, reason)
                : new Prediction(AuditOutcome.Flagged, label, confidence, probabilities, squeezeScore, saliency, reason);
        }
        if (confidence < Policy.AbstainBelow)
            return new Prediction(AuditOutcome.Abstained, null, confidence, probabilities, squeezeScore, saliency,
                $"confidence {confidence:F3} is below {Policy.AbstainBelow:F2}");
        return new Prediction(AuditOutcome.Accepted, label, confidence, probabilities, squeezeScore, saliency, null);
    }

    /// <summary>Gradient saliency: |d(top logit)/d(input)| per pixel, scaled so the largest is 1.</summary>
    private Dictionary<int, float[]> Saliency(Tensor images, int[] indices)
    {
        using var scope = NewDisposeScope();
        using var enabled = enable_grad();
        var chosen = images.index_select(0, tensor(indices.Select(i => (long)i).ToArray())).detach().requires_grad_(true);
        var logits = classifier.Logits(chosen);
        logits.max(1).values.sum().backward();
        var gradient = chosen.grad!.abs().reshape(indices.Length, -1);
        var scaled = gradient / gradient.amax([1], keepdim: true).clamp_min(1e-12);
        var values = scaled.data<float>().ToArray();
        return indices.Select((index, k) => (index, values.AsSpan(k * DigitImage.Pixels, DigitImage.Pixels).ToArray())).ToDictionary(p => p.index, p => p.Item2);
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        await worker.ConfigureAwait(false);
        classifier.Dispose();
    }
}
