using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>Counters and latency histograms in the Prometheus text format.</summary>
public sealed class ServiceMetrics
{
    private static readonly double[] LatencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private readonly ConcurrentDictionary<AuditOutcome, long> decisions = new();
    private readonly long[] latencyCounts = new long[LatencyBuckets.Length + 1];
    private long latencyCount;
    private long latencyMicros;

    public void Record(AuditOutcome outcome, double latencySeconds)
    {
        decisions.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        var bucket = Array.FindIndex(LatencyBuckets, b => latencySeconds <= b);
        Interlocked.Increment(ref latencyCounts[bucket < 0 ? LatencyBuckets.Length : bucket]);
        Interlocked.Increment(ref latencyCount);
        Interlocked.Add(ref latencyMicros, (long)(latencySeconds * 1e6));
    }

    public long Decisions(AuditOutcome outcome) => decisions.GetValueOrDefault(outcome);

    public string Render(int queueLength, bool ready, long auditRecords, long batches, long batchedInputs)
    {
        var text = new StringBuilder();
        void Line(string line) => text.Append(line).Append('\n');
        Line("# HELP securemnist_decisions_total Decisions by outcome.");
        Line("# TYPE securemnist_decisions_total counter");
        foreach (var outcome in Enum.GetValues<AuditOutcome>())
            Line(Invariant($"securemnist_decisions_total{{outcome=\"{outcome.ToString().ToLowerInvariant()}\"}} {Decisions(outcome)}"));
        Line("# HELP securemnist_request_seconds Time from request start to decision.");
        Line("# TYPE securemnist_request_seconds histogram");
        long cumulative = 0;
        for (var i = 0; i < LatencyBuckets.Length; i++)
        {
            cumulative += Interlocked.Read(ref latencyCounts[i]);
            Line(Invariant($"securemnist_request_seconds_bucket{{le=\"{LatencyBuckets[i]}\"}} {cumulative}"));
        }
        Line(Invariant($"securemnist_request_seconds_bucket{{le=\"+Inf\"}} {Interlocked.Read(ref latencyCount)}"));
        Line(Invariant($"securemnist_request_seconds_sum {Interlocked.Read(ref latencyMicros) / 1e6}"));
        Line(Invariant($"securemnist_request_seconds_count {Interlocked.Read(ref latencyCount)}"));
        Line("# HELP securemnist_batches_total Forward passes run (micro-batches).");
        Line("# TYPE securemnist_batches_total counter");
        Line(Invariant($"securemnist_batches_total {batches}"));
        Line("# HELP securemnist_batched_inputs_total Inputs decided by the model; divided by batches, the mean batch size.");
        Line("# TYPE securemnist_batched_inputs_total counter");
        Line(Invariant($"securemnist_batched_inputs_total {batchedInputs}"));
        Line("# TYPE securemnist_queue_length gauge");
        Line(Invariant($"securemnist_queue_length {queueLength}"));
        Line("# TYPE securemnist_ready gauge");
        Line(Invariant($"securemnist_ready {(ready ? 1 : 0)}"));
        Line("# TYPE securemnist_audit_records gauge");
        Line(Invariant($"securemnist_audit_records {auditRecords}"));
        return text.ToString();
    }

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
