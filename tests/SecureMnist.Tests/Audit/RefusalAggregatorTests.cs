using SecureMnist.Audit;
using SecureMnist.Security;

namespace SecureMnist.Tests.Audit;

/// <summary>Refused anonymous requests cost the log one record per client, outcome and window, whatever their number.</summary>
public sealed class RefusalAggregatorTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();
    private readonly SigningKey key = SigningKey.Generate();

    public void Dispose()
    {
        key.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_window_becomes_one_counted_record_per_client_and_outcome()
    {
        var log = AuditLog.Open(directory, key);
        // An hour-long window never closes by itself here: the flushes below are the windows.
        var refusals = new RefusalAggregator(log, new RefusalAggregation(WindowSeconds: 3600, MaxClients: 3));
        for (var i = 0; i < 10_000; i++) refusals.Count("10.0.0.1", AuditOutcome.Unauthorized, "no key", null);
        for (var i = 0; i < 300; i++) refusals.Count("10.0.0.1", AuditOutcome.RateLimited, "over the address rate", null);
        for (var i = 0; i < 7; i++) refusals.Count($"10.0.1.{i}", AuditOutcome.Unauthorized, "no key", null);
        Assert.Equal(10_307, refusals.Pending);
        Assert.Equal(0, log.Records);

        await refusals.FlushAsync();
        await refusals.FlushAsync(); // an empty window writes nothing
        refusals.Count("10.0.0.9", AuditOutcome.Unauthorized, "unknown key", null);
        await refusals.DisposeAsync(); // the open window is written at shutdown
        await log.DisposeAsync();

        var records = AuditVerifier.Records(directory).ToList();
        Assert.Equal(5, records.Count);
        Assert.Equal(10_000, records.Single(r => r.Client == "10.0.0.1" && r.Outcome == AuditOutcome.Unauthorized).Count);
        Assert.Equal(300, records.Single(r => r.Client == "10.0.0.1" && r.Outcome == AuditOutcome.RateLimited).Count);
        // Three client-and-outcome pairs fit the window (10.0.0.1 twice, the first stranger); the other six share one record.
        Assert.Equal(7, records.Where(r => r.Client != "10.0.0.1" && r.Client != "10.0.0.9").Sum(r => r.Count));
        Assert.Contains(records, r => r.Client == RefusalAggregation.OtherClients && r.Count == 6);
        Assert.Equal(1, records.Single(r => r.Client == "10.0.0.9").Count);
        Assert.All(records, r => Assert.Null(r.KeyId));
        Assert.True(AuditVerifier.Verify(directory).Intact);
    }

    [Fact]
    public void Settings_that_make_no_sense_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefusalAggregation(WindowSeconds: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefusalAggregation(MaxClients: 0).Validate());
    }
}
