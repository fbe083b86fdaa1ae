using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary>
/// One writer, one record per response: every outcome the API can give is audited exactly once (a batch once per item),
/// refused unauthenticated requests once per address and window, and the chain verifies afterwards.
/// </summary>
[Collection(ServedModelCollection.Name)]
public sealed class AuditTrailTests(ServedModel model)
{
    [Fact]
    public async Task Every_outcome_is_audited_exactly_once()
    {
        var options = model.Options();
        var responses = new List<(string Name, HttpResponseMessage Response, int Records)>();
        var service = await RunningService.Start(options, configure: app =>
            app.MapGet("/v1/test/fails", IResult () => throw new InvalidOperationException("a bug")).RequireAuthorization(ApiScopes.Predict));
        var user = model.Secrets["user"];
        var digit = ServedModel.Png(model.TestPixels(0));
        async Task Expect(string name, HttpStatusCode status, Task<HttpResponseMessage> sending, int records = 1)
        {
            var response = await sending;
            Assert.True(status == response.StatusCode, $"{name}: {response.StatusCode}, expected {status}");
            responses.Add((name, response, records));
        }

        await Expect("decision", HttpStatusCode.OK, service.PredictPng(digit, user));
        await Expect("batch of two", HttpStatusCode.OK, service.PredictJson($"{{\"items\": [{RunningService.PixelsJson(model.TestPixels(1))}, {{\"pixels\": [2]}}]}}", user, "/v1/predict/batch"), records: 2);
        await Expect("bad JSON", HttpStatusCode.BadRequest, service.PredictJson("{\"pixels\": [", user));
        await Expect("bad query", HttpStatusCode.BadRequest, service.PredictPng(digit, user, "?explain=perhaps"));
        await Expect("too large", HttpStatusCode.RequestEntityTooLarge, service.PredictPng(new byte[options.MaxBodyBytes + 1], user));
        await Expect("wrong type", HttpStatusCode.UnsupportedMediaType, service.Send(HttpMethod.Post, "/v1/predict", user, new StringContent("7")));
        await Expect("not a digit", HttpStatusCode.UnprocessableEntity, service.PredictJson(RunningService.PixelsJson(Enumerable.Repeat(0.5f, 784).ToArray()), user));
        await Expect("wrong scope", HttpStatusCode.Forbidden, service.PredictPng(digit, model.Secrets["admin"]));
        await Expect("first of the slow key", HttpStatusCode.OK, service.PredictPng(digit, model.Secrets["slow"]));
        await Expect("key over its rate", HttpStatusCode.TooManyRequests, service.PredictPng(digit, model.Secrets["slow"]));
        await Expect("unhandled error", HttpStatusCode.InternalServerError, service.Send(HttpMethod.Get, "/v1/test/fails", user));
        await Expect("admin read", HttpStatusCode.OK, service.Send(HttpMethod.Get, "/v1/admin/audit", model.Secrets["admin"]));
        await Expect("no key", HttpStatusCode.Unauthorized, service.PredictPng(digit, null), records: 0);
        await Expect("unknown key", HttpStatusCode.Unauthorized, service.PredictPng(digit, "smk_" + new string('B', 43)), records: 0);
        await Expect("health", HttpStatusCode.OK, service.Send(HttpMethod.Get, "/healthz", null), records: 0);
        await Expect("no such route", HttpStatusCode.NotFound, service.Send(HttpMethod.Get, "/v1/nothing", user), records: 0);
        await service.DisposeAsync();

        // A second service whose batching window outlasts its timeout: 504.
        var slowOptions = model.Options() with { RequestTimeoutSeconds = 0.3, Batching = new BatchingOptions(MaxDelayMilliseconds: 3000) };
        await using (var slow = await RunningService.Start(slowOptions))
        {
            var timedOut = await slow.PredictPng(digit, user);
            Assert.Equal(HttpStatusCode.GatewayTimeout, timedOut.StatusCode);
            var record = Assert.Single(slow.AuditRecords(), r => r.RequestId == RequestId(timedOut));
            Assert.Equal(AuditOutcome.Failed, record.Outcome);
        }

        var log = service.AuditRecords();
        foreach (var (name, response, records) in responses)
            Assert.True(records == log.Count(r => r.RequestId == RequestId(response)), $"{name}: {log.Count(r => r.RequestId == RequestId(response))} records, expected {records}");
        var outcomes = responses.Where(r => r.Records == 1).ToDictionary(r => r.Name, r => log.Single(l => l.RequestId == RequestId(r.Response)).Outcome);
        Assert.Equal(AuditOutcome.Failed, outcomes["unhandled error"]);
        Assert.Equal(AuditOutcome.Rejected, outcomes["too large"]);
        Assert.Equal(AuditOutcome.Rejected, outcomes["not a digit"]);
        Assert.Equal(AuditOutcome.Unauthorized, outcomes["wrong scope"]);
        Assert.Equal(AuditOutcome.RateLimited, outcomes["key over its rate"]);
        Assert.Equal(AuditOutcome.Served, outcomes["admin read"]);
        var anonymous = Assert.Single(log, r => r.Count is not null);
        Assert.Equal((AuditOutcome.Unauthorized, 2L, "127.0.0.1"), (anonymous.Outcome, anonymous.Count!.Value, anonymous.Client));
        Assert.Equal(responses.Sum(r => r.Records) + 1, log.Count);
        AssertIntact(options);
    }

    [Fact]
    public async Task An_anonymous_flood_leaves_a_bounded_audit_log_and_is_limited_before_authentication()
    {
        var options = model.Options() with { RequestsPerSecondPerAddress = 20 };
        var service = await RunningService.Start(options);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 200; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = new ByteArrayContent([1, 2, 3]) };
            using var response = await service.Client.SendAsync(request);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) Assert.NotNull(response.Headers.RetryAfter);
        }
        var keyed = await service.PredictPng(ServedModel.Png(model.TestPixels(3)), model.Secrets["user"]);
        Assert.Equal(0, service.AuditRecords().Count(r => r.KeyId is null));
        await service.DisposeAsync();

        Assert.Contains(HttpStatusCode.Unauthorized, statuses);
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        var log = service.AuditRecords();
        var anonymous = log.Where(r => r.KeyId is null).ToList();
        Assert.InRange(anonymous.Count, 2, 4); // one per outcome (401, 429) and window: the window is a minute
        Assert.Equal(200 + (keyed.StatusCode == HttpStatusCode.TooManyRequests ? 1 : 0), anonymous.Sum(r => r.Count ?? 1));
        AssertIntact(options);
    }

    private static string RequestId(HttpResponseMessage response) => response.Headers.GetValues("X-Request-Id").Single();

    private static void AssertIntact(Server.ServiceOptions options)
    {
        var checkpoints = AuditCheckpoint.ReadAll(Path.Combine(options.AuditDirectory, AuditCheckpoint.CheckpointsFile));
        using var auditKey = SigningKey.FromFile(options.AuditKeyPath);
        var verdict = AuditVerifier.Verify(options.AuditDirectory, checkpoints, auditKey.PublicKey);
        Assert.True(verdict.Intact, verdict.Problem);
    }
}
