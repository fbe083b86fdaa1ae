using SecureMnist.Server;
using SecureMnist.Serving;

namespace SecureMnist.Tests.Service;

/// <summary>The service's settings: defaults, appsettings.json, SECUREMNIST__ environment variables and flags, in rising precedence.</summary>
public sealed class ServiceConfigurationTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static readonly Dictionary<string, string?> Defaults = new()
    {
        ["ModelDirectory"] = "models/baseline", ["PublicKeyPath"] = "keys/signing.pub", ["ApiKeysPath"] = "keys/api-keys.json",
        ["AuditDirectory"] = "runs/audit", ["AuditKeyPath"] = "keys/audit.key", ["DataRoot"] = "data", ["MaxBatchItems"] = "32",
    };

    private string Settings(string json)
    {
        var path = Path.Combine(directory, "appsettings.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static ServiceOptions Load(string? file, Dictionary<string, string?>? environment = null, Dictionary<string, string?>? flags = null) =>
        ServiceConfiguration.Bind(ServiceConfiguration.Build(Defaults, file, flags ?? [], environment ?? []));

    [Fact]
    public void File_then_environment_then_flags_override_the_defaults()
    {
        var file = Settings("""{"Service": {"MaxBatchItems": 16, "Urls": "http://127.0.0.1:9000", "Policy": {"AbstainBelow": 0.8}}}""");
        var fromFile = Load(file);
        Assert.Equal(16, fromFile.MaxBatchItems);
        Assert.Equal(0.8, fromFile.Policy.AbstainBelow);
        Assert.Equal(AdversarialAction.Flag, fromFile.Policy.OnAdversarial); // a nested default survives a partial section
        Assert.Equal("models/baseline", fromFile.ModelDirectory);

        var environment = new Dictionary<string, string?> { ["SECUREMNIST__Service__MaxBatchItems"] = "8", ["SECUREMNIST__Service__Policy__OnAdversarial"] = "reject", ["OTHER__Service__Urls"] = "http://x" };
        var fromEnvironment = Load(file, environment);
        Assert.Equal(8, fromEnvironment.MaxBatchItems);
        Assert.Equal(AdversarialAction.Reject, fromEnvironment.Policy.OnAdversarial);
        Assert.Equal(0.8, fromEnvironment.Policy.AbstainBelow);
        Assert.Equal("http://127.0.0.1:9000", fromEnvironment.Urls);

        var fromFlags = Load(file, environment, new() { ["MaxBatchItems"] = "4", ["Urls"] = "http://127.0.0.1:9100" });
        Assert.Equal(4, fromFlags.MaxBatchItems);
        Assert.Equal("http://127.0.0.1:9100", fromFlags.Urls);
        Assert.Equal(AdversarialAction.Reject, fromFlags.Policy.OnAdversarial);
    }

    [Fact]
    public void Every_bad_setting_is_named()
    {
        var file = Settings("""{"Service": {"Urls": "ftp://x", "Policy": {"AbstainBelow": 1.8}, "Images": {"MaxSide": 5}}}""");
        var error = Assert.Throws<ServiceConfigurationException>(() => Load(file));
        Assert.Contains(error.Failures, f => f.StartsWith("Service:Urls: ", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.StartsWith("Service:Policy:AbstainBelow: ", StringComparison.Ordinal) && f.Contains("1.8", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.StartsWith("Service:Images:MaxSide: ", StringComparison.Ordinal));

        var typo = Assert.Throws<ServiceConfigurationException>(() => Load(Settings("""{"Service": {"MaxBatchItem": 3}}""")));
        Assert.Contains("unknown setting(s) 'MaxBatchItem'", typo.Message, StringComparison.Ordinal);
        var word = Assert.Throws<ServiceConfigurationException>(() => Load(null, new() { ["SECUREMNIST__Service__MaxBatchItems"] = "many" }));
        Assert.Contains("Service:MaxBatchItems", word.Message, StringComparison.Ordinal);
        var redis = Assert.Throws<ServiceConfigurationException>(() => Load(null, flags: new() { ["Redis"] = ",", ["RedisFailure"] = "open" }));
        Assert.Contains(redis.Failures, f => f.StartsWith("Service:Redis: ", StringComparison.Ordinal) && f.Contains("HOST:PORT", StringComparison.Ordinal));
        var replica = Assert.Throws<ServiceConfigurationException>(() => Load(null, flags: new() { ["Redis"] = "127.0.0.1:6379", ["ReplicaId"] = "../r1" }));
        Assert.Contains(replica.Failures, f => f.StartsWith("Service:ReplicaId: ", StringComparison.Ordinal));
        var mode = Assert.Throws<ServiceConfigurationException>(() => Load(null, new() { ["SECUREMNIST__Service__RedisFailure"] = "sometimes" }));
        Assert.Contains("Service:RedisFailure", mode.Message, StringComparison.Ordinal);
        var broken = Assert.Throws<ServiceConfigurationException>(() => Load(Settings("""{"Service": """)));
        Assert.Contains("appsettings.json", broken.Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => Load(Path.Combine(directory, "missing.json")));
    }

    [Fact]
    public void The_printed_configuration_round_trips_and_hides_secrets()
    {
        var options = Load(null, flags: new() { ["Urls"] = "http://operator:hunter2@127.0.0.1:9000" });
        var printed = ServiceConfiguration.Describe(options);
        Assert.DoesNotContain("hunter2", printed, StringComparison.Ordinal);
        Assert.Contains("http://operator:***@127.0.0.1:9000", printed, StringComparison.Ordinal);
        var redis = ServiceConfiguration.Describe(Load(null, flags: new() { ["Redis"] = "redis.internal:6379,password=s3cret,ssl=true" }));
        Assert.DoesNotContain("s3cret", redis, StringComparison.Ordinal);
        Assert.Contains("redis.internal:6379,password=***,ssl=true", redis, StringComparison.Ordinal);
        var clean = Load(null);
        var again = Load(Settings(ServiceConfiguration.Describe(clean)));
        Assert.Equal(clean, again with { Images = clean.Images, Policy = clean.Policy, Batching = clean.Batching, Squeezing = clean.Squeezing, Audit = clean.Audit, Refusals = clean.Refusals });
        Assert.Equal(clean.Policy, again.Policy);
        Assert.Equal(clean.Images, again.Images);
    }
}
