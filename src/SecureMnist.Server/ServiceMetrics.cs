using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Prometheus;
using SecureMnist.Audit;

namespace SecureMnist.Server;

/// <summary>
/// The service's own instruments on <see cref="System.Diagnostics.Metrics"/> (meter "SecureMnist.Service", so securemnist_service_* in
/// Prometheus): decisions by outcome,
/// time to decision, forward passes and batched inputs, queue length, readiness and audit records. Exported with ASP.NET Core's and
/// the runtime's meters by <see cref="MetricsListener"/>.
/// </summary>
public sealed class ServiceMetrics
{
    public const string MeterName = "SecureMnist.Service";
    private readonly Counter<long> decisions;
    private readonly Histogram<double> duration;

    public ServiceMetrics(IMeterFactory meters, ServiceState state, SharedQuota? quota = null)
    {
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentNullException.ThrowIfNull(state);
        Meter = meters.Create(MeterName);
        decisions = Meter.CreateCounter<long>("decisions", "{decision}", "Decisions by outcome (one per answer, one per batch item)");
        duration = Meter.CreateHistogram<double>("decision.duration", "s", "Time from the request's start to its decision",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        Meter.CreateObservableCounter("batches", () => state.Engine?.Batches ?? 0, "{batch}", "Forward passes run (micro-batches)");
        Meter.CreateObservableCounter("batched_inputs", () => state.Engine?.BatchedInputs ?? 0, "{input}", "Inputs decided by the model; over batches, the mean batch size");
        Meter.CreateObservableGauge("queue_length", () => state.Engine?.QueueLength ?? 0, "{input}", "Inputs waiting for or in a forward pass");
        Meter.CreateObservableGauge("ready", () => state.Readiness == Readiness.Ready ? 1 : 0, description: "1 once a signed model has loaded and the checks are calibrated");
        Meter.CreateObservableGauge("audit_records", () => state.Audit.Records, "{record}", "Records in the audit log");
        if (quota is not null)
        {
            Meter.CreateObservableCounter("quota_store_failures", () => quota.Failures, "{check}", "Quota checks that could not reach Redis");
            Meter.CreateObservableGauge("quota_store_up", () => quota.IsDown ? 0 : 1, description: "1 while the last quota check reached Redis");
        }
    }

    public Meter Meter { get; }

    public void Record(AuditOutcome outcome, double latencySeconds)
    {
        var tag = new KeyValuePair<string, object?>("outcome", outcome.ToString().ToLowerInvariant());
        decisions.Add(1, tag);
        duration.Record(latencySeconds, tag);
    }
}

/// <summary>
/// Serves the metrics in the Prometheus text format on their own listener (<see cref="ServiceOptions.MetricsUrls"/>), without a key,
/// loopback unless configured otherwise, as Triton and TorchServe do: a scraper needs no secret, and the API's port serves no metrics.
/// prometheus-net's meter adapter exports this service's meters (its own, ASP.NET Core's request metrics, Kestrel's) and the runtime's.
/// </summary>
public sealed class MetricsListener(ServiceOptions options, ServiceMetrics metrics) : IHostedService, IDisposable
{
    private IDisposable? adapter;
    private IMetricServer? server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.MetricsUrls is not { Length: > 0 } url) return Task.CompletedTask;
        var address = new Uri(url);
        var registry = Metrics.NewCustomRegistry();
        var scope = metrics.Meter.Scope;
        adapter = MeterAdapter.StartListening(new MeterAdapterOptions
        {
            Registry = registry,
            MetricFactory = Metrics.WithCustomRegistry(registry),
            // This host's meters only (several services may share a process, as in the tests), and the process-wide runtime meter.
            InstrumentFilterPredicate = instrument => (scope is not null && ReferenceEquals(instrument.Meter.Scope, scope)) || instrument.Meter.Name == "System.Runtime",
        });
        server = new KestrelMetricServer(address.Host, address.Port, address.AbsolutePath == "/" ? "/metrics" : address.AbsolutePath, registry).Start();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (server is not null) await server.StopAsync().ConfigureAwait(false);
        adapter?.Dispose();
    }

    public void Dispose()
    {
        server?.Dispose();
        adapter?.Dispose();
    }
}
