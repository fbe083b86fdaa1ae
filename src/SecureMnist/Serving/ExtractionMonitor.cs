using System.Collections.Concurrent;
using System.Runtime.Intrinsics;
using SecureMnist.Evaluation;

namespace SecureMnist.Serving;

/// <summary>What the service does with a key the extraction monitor has flagged.</summary>
public enum ExtractionAction
{
    /// <summary>No monitoring.</summary>
    Off,
    /// <summary>Keep answering as before; the detection is written to the audit log and shown by <c>api-keys list</c>.</summary>
    Flag,
    /// <summary>Answer with the label and decision only (no confidence, probabilities or saliency), which is what extraction feeds on.</summary>
    LabelOnly,
    /// <summary>Refuse the key's requests (403) until an administrator clears it.</summary>
    Block,
}

/// <summary>
/// Settings of the extraction monitor. <paramref name="Delta"/> is PRADA's threshold on the Shapiro-Wilk W of a key's minimum-distance
/// distribution, tested once <paramref name="MinimumQueries"/> distances are in; <paramref name="Window"/> most recent distances are kept.
/// <paramref name="StoredPerKey"/> earlier queries (one byte per pixel) are kept per key to measure distances against. The second signal
/// fires when more than <paramref name="RefusedShare"/> of a key's last <paramref name="RefusedWindow"/> queries (at least
/// <paramref name="RefusedMinimum"/>) were refused as not a digit or flagged as adversarial: surrogate data and synthetic queries trip the
/// input checks far more often than real digits. The third fires when more than <paramref name="NearShare"/> of a key's last
/// <paramref name="NearWindow"/> minimum distances are below <paramref name="NearDistance"/> (L2, pixels in [0, 1]): small steps from
/// earlier queries, which augmentation-based attacks make and real digits rarely are (exact repeats are not counted anywhere).
/// </summary>
public sealed record ExtractionMonitorOptions(
    ExtractionAction Action = ExtractionAction.LabelOnly, double Delta = 0.85, int MinimumQueries = 100, int Window = 2048, int StoredPerKey = 512,
    double RefusedShare = 0.5, int RefusedWindow = 200, int RefusedMinimum = 50, double NearDistance = 3.0, double NearShare = 0.25, int NearWindow = 100)
{
    /// <summary>The most memory one key's state takes, in bytes (stored queries, distances and the two flag windows).</summary>
    public long BytesPerKey => (long)StoredPerKey * DigitImage.Pixels + Window * sizeof(double) + RefusedWindow + NearWindow;

    public void Validate()
    {
        if (Delta is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Delta), Delta, "PRADA's W threshold must be in (0, 1)");
        ArgumentOutOfRangeException.ThrowIfLessThan(MinimumQueries, 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(Window, MinimumQueries);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Window, ShapiroWilk.MaximumSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(StoredPerKey, 10);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(StoredPerKey, 100_000);
        if (RefusedShare is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(RefusedShare), RefusedShare, "a share in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfLessThan(RefusedWindow, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(RefusedMinimum, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(RefusedMinimum, RefusedWindow);
        if (NearDistance is <= 0 or > 28) throw new ArgumentOutOfRangeException(nameof(NearDistance), NearDistance, "an L2 distance in (0, 28]");
        if (NearShare is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(NearShare), NearShare, "a share in (0, 1]");
        ArgumentOutOfRangeException.ThrowIfLessThan(NearWindow, 10);
    }
}

/// <summary>A key's standing with the monitor. <paramref name="Since"/> and <paramref name="Reason"/> are set once it is flagged; it stays flagged until cleared.</summary>
public sealed record ExtractionStatus(string KeyId, long Queries, bool Flagged, string? Signal, string? Reason, DateTimeOffset? Since, double? LastW);

/// <summary>
/// Per-key detection of model-extraction query streams. PRADA (Juuti et al. 2019): for each query the L2 distance to the nearest earlier
/// query of the same key and predicted class; queries farther than the class's threshold join that class's growing set and raise the threshold
/// to mean - std of the distances that joined. Natural queries give a roughly normal distribution of those distances; synthetic ones (small
/// steps from seed images, as in Jacobian-based augmentation) do not, and a Shapiro-Wilk W below delta flags the key. Two further signals
/// count small steps from earlier queries and refused or flagged queries. Memory is bounded per key by <see cref="ExtractionMonitorOptions.BytesPerKey"/>; keys are those the operator issued.
/// </summary>
public sealed class ExtractionMonitor(ExtractionMonitorOptions options, TimeProvider? time = null)
{
    private const int Classes = 10;
    private readonly ConcurrentDictionary<string, KeyState> keys = new(StringComparer.Ordinal);
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    public ExtractionMonitorOptions Options { get; } = Validated(options);

    private static ExtractionMonitorOptions Validated(ExtractionMonitorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    /// <summary>
    /// Records one query of a key: its pixels in [0, 1], the class the model gave it (null when it never reached the model) and whether the
    /// input checks refused or flagged it. Returns the key's status after it.
    /// </summary>
    public ExtractionStatus Observe(string keyId, ReadOnlySpan<float> pixels, int? predictedClass, bool refusedOrFlagged)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        if (pixels.Length != DigitImage.Pixels) throw new ArgumentException($"expected {DigitImage.Pixels} pixels", nameof(pixels));
        if (predictedClass is < 0 or >= Classes) throw new ArgumentOutOfRangeException(nameof(predictedClass), predictedClass, "a digit class");
        var state = keys.GetOrAdd(keyId, id => new KeyState(id, Options));
        lock (state) return state.Observe(pixels, predictedClass, refusedOrFlagged, clock.GetUtcNow());
    }

    public ExtractionStatus Status(string keyId)
    {
        if (!keys.TryGetValue(keyId, out var state)) return new ExtractionStatus(keyId, 0, false, null, null, null, null);
        lock (state) return state.Snapshot();
    }

    public IReadOnlyList<ExtractionStatus> Statuses() => [.. keys.Values.Select(s => { lock (s) return s.Snapshot(); }).OrderBy(s => s.KeyId, StringComparer.Ordinal)];

    /// <summary>Marks keys flagged in an earlier run (from <see cref="ExtractionStatusFile"/>) as flagged again, with their reasons.</summary>
    public void Restore(IEnumerable<ExtractionStatus> flagged)
    {
        ArgumentNullException.ThrowIfNull(flagged);
        foreach (var status in flagged.Where(s => s.Flagged))
        {
            var state = keys.GetOrAdd(status.KeyId, id => new KeyState(id, Options));
            lock (state) state.Restore(status);
        }
    }

    /// <summary>Earlier queries kept for a key (bounded by <see cref="ExtractionMonitorOptions.StoredPerKey"/>).</summary>
    internal int StoredImages(string keyId)
    {
        if (!keys.TryGetValue(keyId, out var state)) return 0;
        lock (state) return state.Stored;
    }

    /// <summary>Forgets a key's history and any flag (an administrator's decision).</summary>
    public bool Clear(string keyId) => keys.TryRemove(keyId, out _);

    /// <summary>Squared L2 distance of two byte images (pixels scaled by 255).</summary>
    internal static int SquaredDistance(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        var i = 0;
        var sum = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var total = Vector256<int>.Zero;
            for (; i + Vector256<byte>.Count <= a.Length; i += Vector256<byte>.Count)
            {
                var (aLow, aHigh) = Vector256.Widen(Vector256.Create(a.Slice(i, Vector256<byte>.Count)));
                var (bLow, bHigh) = Vector256.Widen(Vector256.Create(b.Slice(i, Vector256<byte>.Count)));
                var (lowLow, lowHigh) = Vector256.Widen(aLow.AsInt16() - bLow.AsInt16());
                var (highLow, highHigh) = Vector256.Widen(aHigh.AsInt16() - bHigh.AsInt16());
                total += lowLow * lowLow + lowHigh * lowHigh + highLow * highLow + highHigh * highHigh;
            }
            sum = Vector256.Sum(total);
        }
        for (; i < a.Length; i++)
        {
            var d = a[i] - b[i];
            sum += d * d;
        }
        return sum;
    }

    private sealed class KeyState(string keyId, ExtractionMonitorOptions options)
    {
        private readonly List<byte[]>[] growing = [.. Enumerable.Range(0, Classes).Select(_ => new List<byte[]>())];
        private readonly double[] thresholds = new double[Classes];
        private readonly (long Count, double Mean, double M2)[] joined = new (long, double, double)[Classes];
        private readonly double[] distances = new double[options.Window];
        private readonly bool[] refusals = new bool[options.RefusedWindow];
        private readonly bool[] nearSteps = new bool[options.NearWindow];
        private int stored;
        private long distanceCount;
        private long queries;
        private long refusalCount;
        private double? lastW;
        private double[]? windowCoefficients;
        private string? signal;
        private string? reason;
        private DateTimeOffset? since;

        public int Stored => stored;

        public ExtractionStatus Snapshot() => new(keyId, queries, since is not null, signal, reason, since, lastW);

        public ExtractionStatus Observe(ReadOnlySpan<float> pixels, int? predicted, bool refused, DateTimeOffset now)
        {
            queries++;
            refusals[refusalCount++ % refusals.Length] = refused;
            if (predicted is { } c) Distance(pixels, c);
            if (since is null) Test(now);
            return Snapshot();
        }

        private void Distance(ReadOnlySpan<float> pixels, int c)
        {
            var image = new byte[DigitImage.Pixels];
            for (var i = 0; i < image.Length; i++) image[i] = (byte)Math.Clamp(MathF.Round(pixels[i] * 255), 0, 255);
            var set = growing[c];
            if (set.Count == 0)
            {
                if (stored < options.StoredPerKey) Add(set, image);
                return;
            }
            var nearest = int.MaxValue;
            foreach (var other in set) nearest = Math.Min(nearest, SquaredDistance(image, other));
            // An exact repeat tells an extractor nothing new, and benign clients resend images: it is not a distance.
            if (nearest == 0) return;
            var distance = Math.Sqrt(nearest) / 255;
            nearSteps[distanceCount % nearSteps.Length] = distance < options.NearDistance;
            distances[distanceCount++ % distances.Length] = distance;
            if (distance > thresholds[c] && stored < options.StoredPerKey)
            {
                Add(set, image);
                var (count, mean, m2) = joined[c];
                count++;
                var delta = distance - mean;
                mean += delta / count;
                m2 += delta * (distance - mean);
                joined[c] = (count, mean, m2);
                var std = count > 1 ? Math.Sqrt(m2 / (count - 1)) : 0;
                thresholds[c] = Math.Max(thresholds[c], mean - std);
            }
        }

        private void Add(List<byte[]> set, byte[] image)
        {
            set.Add(image);
            stored++;
        }

        private void Test(DateTimeOffset now)
        {
            var n = (int)Math.Min(distanceCount, distances.Length);
            // Every query while the history is short, then every 8th: the test sorts the window.
            if (n >= options.MinimumQueries && (n < 512 || distanceCount % 8 == 0))
            {
                var sorted = distances.AsSpan(0, n).ToArray();
                Array.Sort(sorted);
                if (sorted[^1] > sorted[0])
                {
                    var coefficients = n == distances.Length ? windowCoefficients ??= ShapiroWilk.Coefficients(n) : ShapiroWilk.Coefficients(n);
                    lastW = ShapiroWilk.W(sorted, coefficients);
                }
                else lastW = 0; // every distance equal: as far from a natural spread as it gets
                if (lastW < options.Delta)
                {
                    Flag(now, "prada", $"PRADA: Shapiro-Wilk W {lastW:F3} < {options.Delta:G} over the last {n} minimum distances, after {queries} queries");
                    return;
                }
            }
            var steps = (int)Math.Min(distanceCount, nearSteps.Length);
            if (steps == nearSteps.Length)
            {
                var share = (double)nearSteps.AsSpan().Count(true) / steps;
                if (share > options.NearShare)
                {
                    Flag(now, "near-steps", $"{share:P0} of the last {steps} queries within L2 {options.NearDistance:G} of an earlier one (above {options.NearShare:P0}), after {queries} queries");
                    return;
                }
            }
            var recent = (int)Math.Min(refusalCount, refusals.Length);
            if (recent >= options.RefusedMinimum)
            {
                var share = (double)refusals.AsSpan(0, recent).Count(true) / recent;
                if (share > options.RefusedShare)
                    Flag(now, "refusals", $"{share:P0} of the last {recent} queries refused as not a digit or flagged as adversarial (above {options.RefusedShare:P0}), after {queries} queries");
            }
        }

        public void Restore(ExtractionStatus status)
        {
            since = status.Since ?? DateTimeOffset.UnixEpoch;
            signal = status.Signal;
            reason = status.Reason;
        }

        private void Flag(DateTimeOffset now, string name, string detail)
        {
            since = now;
            signal = name;
            reason = detail;
        }
    }
}

/// <summary>
/// The flagged keys, kept beside the API key file (<c>NAME.extraction.json</c>) so that a flag survives a restart and
/// <c>api-keys list</c> can show it. Written whole and atomically whenever a key is flagged or cleared.
/// </summary>
public static class ExtractionStatusFile
{
    private static readonly System.Text.Json.JsonSerializerOptions Json = new(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string For(string apiKeysPath) => Path.ChangeExtension(apiKeysPath, ".extraction.json");

    public static IReadOnlyList<ExtractionStatus> Load(string path)
    {
        if (!File.Exists(path)) return [];
        if (new FileInfo(path).Length > 16 << 20) throw new InvalidDataException($"{path} is over 16 MiB; it holds one line per flagged key");
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<List<ExtractionStatus>>(File.ReadAllBytes(path), Json) ?? [];
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path} is not an extraction status file: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes this process's flagged keys and keeps every other flag already in the file: replicas that share the key file each flag
    /// what they saw, and none erases another's flags. A key this process knows as unflagged keeps a flag another replica wrote.
    /// </summary>
    public static void Merge(string path, IEnumerable<ExtractionStatus> statuses)
    {
        var mine = statuses.Where(s => s.Flagged).ToList();
        var ids = mine.Select(s => s.KeyId).ToHashSet(StringComparer.Ordinal);
        Save(path, Load(path).Where(s => !ids.Contains(s.KeyId)).Concat(mine));
    }

    public static void Save(string path, IEnumerable<ExtractionStatus> flagged) =>
        IO.AtomicFile.WriteAllBytes(path, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(flagged.Where(s => s.Flagged).OrderBy(s => s.KeyId, StringComparer.Ordinal).ToList(), Json));
}
