using SecureMnist.Server;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary><c>bench serve</c>'s phases, short: the figures it prints come from a real service, and its verdict is not a constant.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class ServeBenchTests(ServedModel model)
{
    [Fact]
    public async Task A_short_bench_measures_throughput_holds_the_flooding_key_to_its_quota_and_accounts_for_every_request_in_the_audit_log()
    {
        var digits = Enumerable.Range(0, 20).Select(i => DigitImage.Png(model.Mnist.Test.Image(i))).ToList();
        var options = new ServeBenchOptions(model.Options(), digits, Seconds: 1, Concurrency: 8, Runs: 1, FloodRequestsPerMinute: 1200, FloodSeconds: 3,
            AnonymousSeconds: 2, KeyedRate: 10);
        var progress = new List<string>();
        var bench = await ServeBench.RunAsync(options, Path.Combine(model.Directory, "serve-bench-" + Guid.NewGuid().ToString("N")), new SynchronousProgress(progress.Add));

        Assert.True(bench.Consistent, System.Text.Json.JsonSerializer.Serialize(bench));
        Assert.Contains(progress, p => p.StartsWith("flood:", StringComparison.Ordinal));
        Assert.True(bench.Throughput.SucceededPerSecond > 0);
        Assert.Single(bench.ThroughputRuns);
        Assert.Equal(20, bench.Digits);
        // The flooding key gets its burst and the refill, not more; the key beside it is always served.
        Assert.Equal(120, bench.Flood.Burst);
        Assert.InRange(bench.Flood.Deviation, -0.15, 0.05);
        Assert.True(bench.Flood.FloodSent > bench.Flood.FloodAccepted, $"{bench.Flood.FloodSent} sent, {bench.Flood.FloodAccepted} accepted");
        Assert.Equal(bench.Flood.SteadySent, bench.Flood.SteadySucceeded);
        // The anonymous flood is refused (401) and its refusals are aggregated within their bound, counting every request.
        Assert.True(bench.AnonymousFlood.StatusCounts.GetValueOrDefault(401) > 0);
        Assert.InRange(bench.AnonymousFlood.AuditRecords, 1, bench.AnonymousFlood.AuditRecordsBound);
        Assert.Equal(bench.AnonymousFlood.Answered, bench.AnonymousFlood.AuditedRequests);
        Assert.Equal(bench.AnsweredRequests, bench.AuditedRequests);
        // The verdict follows the figures: a request missing from the log, or records over the bound, fail it.
        Assert.False((bench with { AuditedRequests = bench.AuditedRequests - 1 }).Consistent);
        Assert.False((bench with { AnonymousFlood = bench.AnonymousFlood with { AuditRecords = bench.AnonymousFlood.AuditRecordsBound + 1 } }).Consistent);
    }

    [Theory]
    [InlineData("Seconds")]
    [InlineData("Runs")]
    [InlineData("FloodSeconds")]
    [InlineData("KeyedRate")]
    [InlineData("Digits")]
    public void Out_of_range_settings_are_refused_before_the_service_starts(string setting)
    {
        var options = new ServeBenchOptions(model.Options(), [DigitImage.Png(model.Mnist.Test.Image(0))]);
        var bad = setting switch
        {
            "Seconds" => options with { Seconds = 0 },
            "Runs" => options with { Runs = 10 },
            "FloodSeconds" => options with { FloodSeconds = -1 },
            "KeyedRate" => options with { KeyedRate = double.NaN },
            _ => options with { Digits = [] },
        };
        var error = Assert.Throws<ArgumentOutOfRangeException>(bad.Validate);
        Assert.Equal(setting, error.ParamName);
        options.Validate();
    }

    private sealed class SynchronousProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
