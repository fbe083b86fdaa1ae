using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Server;
using SecureMnist.Serving;
using SecureMnist.Training;
using SkiaSharp;

namespace SecureMnist.Tests.Service;

/// <summary>
/// A small CNN trained once on real MNIST (6,000 images, 2 epochs), packaged and signed with a key made for the test,
/// plus an API key file with one key per role. Secrets exist only in memory.
/// </summary>
public sealed class ServedModel : IDisposable
{
    public ServedModel()
    {
        Directory = TestPaths.NewScratchDirectory();
        Mnist = TestPaths.Mnist();
        using var key = SigningKey.Generate();
        (_, PublicKeyPath) = key.Save(Path.Combine(Directory, "signing.key"));
        PackageDirectory = Path.Combine(Directory, "model");
        var options = new TrainingOptions { TrainSubset = 6000, Epochs = 2 };
        using var trained = TrainingPipeline.TrainAndPackage(options, Mnist with { Test = Mnist.Test.Take(2000) }, Path.Combine(Directory, "run"), PackageDirectory, key, resume: false).Training.Network;
        ApiKeysPath = Path.Combine(Directory, "api-keys.json");
        Secrets = new Dictionary<string, string>
        {
            ["user"] = ApiKeyStore.Add(ApiKeysPath, "user", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 60_000),
            ["label-only"] = ApiKeyStore.Add(ApiKeysPath, "label-only", [ApiScopes.Predict], labelOnly: true, requestsPerMinute: 60_000),
            ["admin"] = ApiKeyStore.Add(ApiKeysPath, "admin", [ApiScopes.Admin], labelOnly: false, requestsPerMinute: 60_000),
            ["slow"] = ApiKeyStore.Add(ApiKeysPath, "slow", [ApiScopes.Predict], labelOnly: false, requestsPerMinute: 1),
        };
    }

    public string Directory { get; }
    public Dataset Mnist { get; }
    public string PackageDirectory { get; }
    public string PublicKeyPath { get; }
    public string ApiKeysPath { get; }
    public IReadOnlyDictionary<string, string> Secrets { get; }

    public ServiceOptions Options(string? package = null) => new()
    {
        ModelDirectory = package ?? PackageDirectory,
        PublicKeyPath = PublicKeyPath,
        ApiKeysPath = ApiKeysPath,
        AuditDirectory = Path.Combine(Directory, "audit-" + Guid.NewGuid().ToString("N")),
        AuditKeyPath = Path.Combine(Directory, "audit-" + Guid.NewGuid().ToString("N") + ".key"),
        DataRoot = TestPaths.DataRoot,
        Urls = "http://127.0.0.1:0",
        SqueezeCalibrationImages = 500,
    };

    /// <summary>A test image as 784 values in [0, 1].</summary>
    public float[] TestPixels(int index) => Mnist.Test.Image(index).ToArray().Select(b => b / 255f).ToArray();

    public static byte[] Png(float[] pixels, int side = DigitImage.Side)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(side, side, SKColorType.Gray8, SKAlphaType.Opaque));
        var bytes = pixels.Select(v => (byte)Math.Round(v * 255)).ToArray();
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

[CollectionDefinition(Name)]
public sealed class ServedModelCollection : ICollectionFixture<ServedModel>
{
    public const string Name = "served model";
}

/// <summary>The real service on Kestrel at 127.0.0.1 on a free port, spoken to over HTTP.</summary>
public sealed class RunningService : IAsyncDisposable
{
    private readonly WebApplication app;

    private RunningService(WebApplication app, ServiceOptions options, Uri address)
    {
        this.app = app;
        Options = options;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public ServiceOptions Options { get; }
    public HttpClient Client { get; }

    /// <summary>A loopback port free at the moment (for a second listener, such as the metrics one).</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
    public ServiceState State => app.Services.GetRequiredService<ServiceState>();
    public IServiceProvider Services => app.Services;

    /// <param name="configure">Runs on the built app before it starts (tests map extra endpoints here).</param>
    /// <param name="logs">Receives the service's log events (none are written otherwise).</param>
    public static async Task<RunningService> Start(ServiceOptions options, bool waitUntilReady = true, Action<WebApplication>? configure = null, ILoggerProvider? logs = null)
    {
        var app = ServiceHost.Build(options, logging =>
        {
            logging.ClearProviders();
            if (logs is not null) logging.AddProvider(logs);
        });
        configure?.Invoke(app);
        await app.StartAsync();
        var service = new RunningService(app, options, ServiceHost.Address(app));
        if (waitUntilReady) await service.State.WaitUntilReadyAsync(TimeSpan.FromMinutes(2));
        return service;
    }

    public async Task<HttpResponseMessage> Send(HttpMethod method, string path, string? secret, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (secret is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return await Client.SendAsync(request);
    }

    public Task<HttpResponseMessage> PredictPng(byte[] png, string? secret, string query = "")
    {
        var content = new ByteArrayContent(png);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return Send(HttpMethod.Post, "/v1/predict" + query, secret, content);
    }

    public Task<HttpResponseMessage> PredictJson(string json, string? secret, string path = "/v1/predict") =>
        Send(HttpMethod.Post, path, secret, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

    public static string PixelsJson(float[] pixels) => System.Text.Json.JsonSerializer.Serialize(new { pixels });

    public IReadOnlyList<SecureMnist.Audit.AuditRecord> AuditRecords() =>
        File.ReadAllLines(Path.Combine(Options.AuditLogDirectory, SecureMnist.Audit.AuditLog.ActiveFile))
            .Select(line => System.Text.Json.JsonSerializer.Deserialize<SecureMnist.Audit.AuditRecord>(System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("record"), SecureMnist.IO.JsonFormat.Documents)!)
            .ToList();

    /// <summary>Stops the service: the aggregated refusals and a final checkpoint are written.</summary>
    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

/// <summary>Keeps every log event a service writes, with its structured values.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Category, LogLevel Level, EventId Event, IReadOnlyDictionary<string, object?> Values)> events = new();

    public IReadOnlyList<(string Category, LogLevel Level, EventId Event, IReadOnlyDictionary<string, object?> Values)> Events => [.. events];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, events);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<(string, LogLevel, EventId, IReadOnlyDictionary<string, object?>)> events) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state as IEnumerable<KeyValuePair<string, object?>> ?? [];
            events.Enqueue((category, logLevel, eventId, values.ToDictionary(kv => kv.Key, kv => kv.Value)));
        }
    }
}
