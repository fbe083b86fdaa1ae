using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecureMnist.Audit;
using SecureMnist.Security;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>Builds the service: one call per concern, in the order requests meet them.</summary>
public static class ServiceHost
{
    public const string PerKeyPolicy = "per-key";

    /// <summary>
    /// Validates the options, opens the API keys and the audit log (refusing a log that fails verification) and builds
    /// the app. The model is verified and loaded in the background once the server listens; until it is, /readyz
    /// answers 503 with the reason.
    /// </summary>
    public static WebApplication Build(ServiceOptions options, Action<ILoggingBuilder>? logging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var keys = ApiKeyStore.Load(options.ApiKeysPath);
        var auditKey = AuditKey(options.AuditKeyPath);
        var audit = AuditLog.Open(options.AuditLogDirectory, auditKey, options.Audit);
        var state = new ServiceState(options, keys, audit);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production, Args = [] });
        builder.Logging.ClearProviders();
        switch (options.LogFormat)
        {
            case ServiceLogFormat.Json:
                builder.Logging.AddJsonConsole(json =>
                {
                    json.UseUtcTimestamp = true;
                    json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                });
                break;
            case ServiceLogFormat.Simple:
                builder.Logging.AddSimpleConsole(simple => simple.SingleLine = true);
                break;
        }
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (logging is not null) logging(builder.Logging);
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxBatchBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 << 10;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        });
        builder.Services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<ServiceOptions>, ServiceOptionsValidation>();
        builder.Services.AddSingleton<Microsoft.Extensions.Options.IOptionsFactory<ServiceOptions>>(services =>
            new BoundOptionsFactory(options, services.GetServices<Microsoft.Extensions.Options.IValidateOptions<ServiceOptions>>()));
        builder.Services.AddOptions<ServiceOptions>().ValidateOnStart();
        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton(options);
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<ServiceMetrics>();
        builder.Services.AddSingleton<KeyQuotas>();
        builder.Services.AddHostedService<MetricsListener>();
        builder.Services.AddProblemDetails();
        builder.Services.AddApiDocument();
        // Nothing here uses data protection (no cookies, no antiforgery); keep its key ring in memory instead of on disk.
        builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull);
        builder.Services.AddAuthentication(ApiKeyAuthentication.SchemeName).AddScheme<AuthenticationSchemeOptions, ApiKeyAuthentication>(ApiKeyAuthentication.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(ApiScopes.Predict, policy => policy.RequireClaim(ApiKeyAuthentication.ScopeClaim, ApiScopes.Predict))
            .AddPolicy(ApiScopes.Admin, policy => policy.RequireClaim(ApiKeyAuthentication.ScopeClaim, ApiScopes.Admin));
        builder.Services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests; // the default would be 503
            limiter.AddPolicy(PerKeyPolicy, PerKeyBucket);
            limiter.OnRejected = async (rejected, _) =>
            {
                var context = rejected.HttpContext;
                if (rejected.Lease.TryGetMetadata(SharedQuota.Unavailable, out var unavailable))
                {
                    context.Response.Headers.RetryAfter = "1";
                    var why = $"the shared quota store cannot be reached ({unavailable}); this replica refuses keyed requests until it can";
                    Decisions.Refused(context, why);
                    await Problems.Write(context, StatusCodes.Status503ServiceUnavailable, "Quota store unavailable", why).ConfigureAwait(false);
                    return;
                }
                var retry = RetryAfter(rejected.Lease);
                var seconds = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds));
                context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                var detail = $"this API key's request rate is exhausted; retry after {seconds} s";
                Decisions.Refused(context, detail);
                await Problems.Write(context, StatusCodes.Status429TooManyRequests, "Too many requests", detail).ConfigureAwait(false);
            };
        });
        builder.Services.AddRequestTimeouts(timeouts => timeouts.DefaultPolicy = new RequestTimeoutPolicy
        {
            Timeout = TimeSpan.FromSeconds(options.RequestTimeoutSeconds),
            TimeoutStatusCode = StatusCodes.Status504GatewayTimeout,
        });

        if (options.SharesQuotas)
            builder.Services.AddSingleton(services => SharedQuota.Connect(options.Redis!, options.RedisFailure, services.GetRequiredService<ILoggerFactory>().CreateLogger(ServiceLog.Category)));

        var app = builder.Build();
        if (options.SharesQuotas) _ = app.Services.GetRequiredService<SharedQuota>(); // connect as the service starts, not at the first request
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            // Never a stack trace: a generic problem, with the request id to find the log line.
            ExceptionHandler = context => Problems.Write(context, StatusCodes.Status500InternalServerError, "Internal error",
                $"the request failed; quote request id {context.TraceIdentifier} to the operator"),
        });
        app.UseStatusCodePages(async pages =>
        {
            var response = pages.HttpContext.Response;
            if (response.HasStarted || response.ContentLength > 0 || response.ContentType is not null) return;
            await Problems.Write(pages.HttpContext, response.StatusCode, ReasonPhrase(response.StatusCode), $"{pages.HttpContext.Request.Method} {pages.HttpContext.Request.Path} gave {response.StatusCode}").ConfigureAwait(false);
        });
        app.Use(async (context, next) =>
        {
            Decisions.MarkStart(context);
            // Set as the response starts, so an error page (which clears the headers) carries them too.
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                headers.XFrameOptions = "DENY";
                headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
                headers.CacheControl = "no-store";
                headers["X-Request-Id"] = context.TraceIdentifier;
                return Task.CompletedTask;
            });
            await next(context).ConfigureAwait(false);
        });
        app.UseMiddleware<AuditTrail>();
        app.UseMiddleware<ClientAddressLimit>();
        app.UseRequestTimeouts();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapPredict();
        app.MapInferenceProtocol();
        app.MapOperations();
        app.MapWebPage();
        app.MapApiDocument();

        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(ServiceLog.Category);
        app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(() =>
        {
            state.Load();
            if (state.Engine is { } engine) ServiceLog.Ready(log, engine.Model.ManifestSha256, engine.Model.Manifest.Architecture, Math.Round(engine.Squeezing.Threshold, 6));
            else ServiceLog.NotReady(log, state.NotReadyReason ?? "unknown");
        }));
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            state.DisposeAsync().AsTask().GetAwaiter().GetResult();
            auditKey.Dispose();
        });
        return app;
    }

    /// <summary>Where a started app listens (with port 0 in the options, the port the system picked).</summary>
    public static Uri Address(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    private static RateLimitPartition<string> PerKeyBucket(HttpContext context) => context.RequestServices.GetRequiredService<KeyQuotas>().Partition(context);

    /// <summary>When a refused key may retry: the in-process bucket says it as a time span, the Redis bucket in whole seconds.</summary>
    private static TimeSpan RetryAfter(RateLimitLease lease)
    {
        if (lease.TryGetMetadata(MetadataName.RetryAfter.Name, out var value))
            switch (value)
            {
                case TimeSpan span: return span;
                case int seconds: return TimeSpan.FromSeconds(seconds);
            }
        return TimeSpan.FromSeconds(1);
    }

    /// <summary>The key that signs audit checkpoints; created on first start (private key owner-only, public key beside it).</summary>
    private static SigningKey AuditKey(string path)
    {
        if (File.Exists(path)) return SigningKey.FromFile(path);
        var key = SigningKey.Generate();
        key.Save(path);
        return key;
    }

    private static string ReasonPhrase(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "Error";
}
