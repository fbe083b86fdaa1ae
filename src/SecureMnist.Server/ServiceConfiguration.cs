using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace SecureMnist.Server;

/// <summary>A configuration that cannot start the service: every failure names its setting (e.g. "Service:Policy:AbstainBelow").</summary>
public sealed class ServiceConfigurationException(IReadOnlyList<string> failures)
    : Exception("the service configuration is not valid:\n  " + string.Join("\n  ", failures))
{
    public IReadOnlyList<string> Failures { get; } = failures;
}

/// <summary>
/// The service's configuration the ASP.NET way: the "Service" section of, in rising precedence, the built-in defaults,
/// appsettings.json (or the file given), environment variables named SECUREMNIST__Service__Setting (nested settings
/// with "__", e.g. SECUREMNIST__Service__Policy__AbstainBelow), and the command line's explicit flags. An unknown
/// setting is an error, not a silently ignored typo.
/// </summary>
public static partial class ServiceConfiguration
{
    public const string Section = "Service";
    public const string EnvironmentPrefix = "SECUREMNIST__";
    public const string DefaultFile = "appsettings.json";

    /// <summary>The layered configuration. <paramref name="settingsFile"/> null reads appsettings.json when present; a named file must exist.</summary>
    public static IConfigurationRoot Build(IReadOnlyDictionary<string, string?> defaults, string? settingsFile, IReadOnlyDictionary<string, string?> commandLine,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        ArgumentNullException.ThrowIfNull(commandLine);
        if (settingsFile is not null && !File.Exists(settingsFile)) throw new FileNotFoundException($"configuration file {settingsFile} not found", settingsFile);
        var file = Path.GetFullPath(settingsFile ?? DefaultFile);
        var builder = new ConfigurationBuilder().AddInMemoryCollection(Prefixed(defaults));
        builder.AddJsonFile(file, optional: settingsFile is null, reloadOnChange: false);
        if (environment is null) builder.AddEnvironmentVariables(EnvironmentPrefix);
        else builder.AddInMemoryCollection(environment.Where(kv => kv.Key.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            .Select(kv => KeyValuePair.Create(kv.Key[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal), kv.Value)));
        builder.AddInMemoryCollection(Prefixed(commandLine));
        try
        {
            return builder.Build();
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or JsonException)
        {
            throw new ServiceConfigurationException([$"{file}: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}"]);
        }
    }

    private static IEnumerable<KeyValuePair<string, string?>> Prefixed(IReadOnlyDictionary<string, string?> settings) =>
        settings.Select(kv => KeyValuePair.Create($"{Section}:{kv.Key}", kv.Value));

    /// <summary>Binds and validates the "Service" section; throws <see cref="ServiceConfigurationException"/> naming every bad setting.</summary>
    public static ServiceOptions Bind(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ServiceOptions? options;
        try
        {
            options = configuration.GetSection(Section).Get<ServiceOptions>(binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new ServiceConfigurationException([BinderMessage(e)]);
        }
        if (options is null) throw new ServiceConfigurationException([$"the \"{Section}\" section is empty"]);
        options.Validate();
        return options;
    }

    // The binder's messages name the setting already ("Failed to convert configuration value at 'Service:MaxBatchItems' to type ..."),
    // and unknown keys come as "'X' was not found on type ...": keep the first line, which says which.
    private static string BinderMessage(InvalidOperationException e)
    {
        if (UnknownSettings().Match(e.Message) is { Success: true } unknown)
            return $"{Section}: unknown setting(s) {unknown.Groups["names"].Value} (not a setting of {unknown.Groups["type"].Value.Split('.')[^1]}; see serve --print-config for the known ones)";
        return (e.InnerException is { } inner ? $"{e.Message.Split('\n')[0]} ({inner.Message.Split('\n')[0]})" : e.Message.Split('\n')[0]).Trim();
    }

    [GeneratedRegex(@"not found on the instance of (?<type>[\w.]+): (?<names>.+)$", RegexOptions.Singleline)]
    private static partial Regex UnknownSettings();

    /// <summary>The effective configuration as JSON, secrets redacted: what <c>serve --print-config</c> shows.</summary>
    /// <summary>Enum values by their names (LabelOnly, not label-only), which the configuration binder reads back.</summary>
    private static readonly JsonSerializerOptions Printed = EnumsByName();

    private static JsonSerializerOptions EnumsByName()
    {
        var options = new JsonSerializerOptions(IO.JsonFormat.Documents);
        options.Converters.Clear();
        options.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
        return options;
    }

    public static string Describe(ServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var node = JsonSerializer.SerializeToNode(options, Printed)!;
        Redact(node);
        return new JsonObject { [Section] = node }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static void Redact(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                {
                    if (SecretName().IsMatch(key)) o[key] = value is null ? null : "***";
                    else if (value is JsonValue v && v.TryGetValue<string>(out var text) && (UrlPassword().IsMatch(text) || OptionPassword().IsMatch(text)))
                        o[key] = OptionPassword().Replace(UrlPassword().Replace(text, "${user}:***@"), "${name}=***");
                    else Redact(value);
                }
                break;
            case JsonArray a:
                foreach (var item in a) Redact(item);
                break;
        }
    }

    [GeneratedRegex("(password|secret|token|credential)", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();

    [GeneratedRegex(@"(?<user>//[^/:@\s]*):[^@/\s]+@")]
    private static partial Regex UrlPassword();

    // A Redis configuration string's "password=..." (and "user=...": half a credential).
    [GeneratedRegex("(?<name>password|user)=[^,]*", RegexOptions.IgnoreCase)]
    private static partial Regex OptionPassword();
}

/// <summary>The service options' validation as an <see cref="IValidateOptions{TOptions}"/> (registered with ValidateOnStart), each failure naming its setting.</summary>
public sealed class ServiceOptionsValidation : IValidateOptions<ServiceOptions>
{
    public ValidateOptionsResult Validate(string? name, ServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Check(string path, Action validate)
        {
            try
            {
                validate();
            }
            catch (ArgumentException e)
            {
                var setting = e.ParamName is { } parameter ? $"{path}{(path.Length > 0 ? ":" : "")}{parameter}" : path;
                var got = e is ArgumentOutOfRangeException { ActualValue: { } actual } && !e.Message.Contains($"'{actual}'", StringComparison.Ordinal) ? $" (got {actual})" : "";
                failures.Add($"{ServiceConfiguration.Section}{(setting.Length > 0 ? ":" + setting : "")}: {Clean(e.Message)}{got}");
            }
        }
        Check("", options.ValidateOwn);
        Check("Images", options.Images.Validate);
        Check("Policy", options.Policy.Validate);
        Check("Batching", options.Batching.Validate);
        Check("Squeezing", options.Squeezing.Validate);
        Check("Extraction", options.Extraction.Validate);
        Check("Audit", options.Audit.Validate);
        Check("Refusals", options.Refusals.Validate);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // "X ('0') must be ... (Parameter 'X')\nActual value was 0." becomes "X ('0') must be ...".
    private static string Clean(string message) => message.Split('\n')[0].Split(" (Parameter '")[0].Trim();
}

/// <summary>
/// Hands the options the service was built with to the options pipeline, through its validators: registered with ValidateOnStart,
/// a bad configuration stops the host as it starts, with every failure named, instead of at the first request that reads it.
/// </summary>
public sealed class BoundOptionsFactory(ServiceOptions options, IEnumerable<IValidateOptions<ServiceOptions>> validators) : IOptionsFactory<ServiceOptions>
{
    public ServiceOptions Create(string name)
    {
        var failures = validators.Select(v => v.Validate(name, options)).Where(r => r.Failed).SelectMany(r => r.Failures ?? [r.FailureMessage ?? "invalid"]).ToList();
        return failures.Count == 0 ? options : throw new OptionsValidationException(name, typeof(ServiceOptions), failures);
    }
}
