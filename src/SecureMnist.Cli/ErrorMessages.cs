using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;

namespace SecureMnist.Cli;

/// <summary>
/// Error messages in plain words: .NET's argument checks say "Epochs ('0') must be a non-negative and non-zero value. (Parameter
/// 'Epochs') Actual value was 0."; the user typed --epochs, so the message names the flag, the rule and the value given.
/// </summary>
internal static partial class ErrorMessages
{
    [GeneratedRegex(@"^(?<name>[A-Za-z_][A-Za-z0-9_.]*) \('(?<value>[^']*)'\) must be (?<rule>.+?)\.$", RegexOptions.Singleline)]
    private static partial Regex GuardPattern();

    [GeneratedRegex(@" \(Parameter '(?<parameter>[^']+)'\)", RegexOptions.Singleline)]
    private static partial Regex ParameterSuffix();

    [GeneratedRegex(@"\r?\nActual value was (?<value>.*?)\.?$", RegexOptions.Singleline)]
    private static partial Regex ActualValueSuffix();

    [GeneratedRegex(@"^'?(?<bound>[^']*)'?$")]
    private static partial Regex Quoted();

    public static string Plain(Exception exception, Command? command)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is not ArgumentException argument) return exception.Message;
        var message = argument.Message;
        string? parameter = argument.ParamName;
        string? actual = null;
        if (ActualValueSuffix().Match(message) is { Success: true } actualMatch)
        {
            actual = actualMatch.Groups["value"].Value;
            message = message[..actualMatch.Index];
        }
        if (ParameterSuffix().Match(message) is { Success: true } parameterMatch)
        {
            parameter ??= parameterMatch.Groups["parameter"].Value;
            message = message.Remove(parameterMatch.Index, parameterMatch.Length);
        }
        message = message.Trim();
        var flag = parameter is null ? null : FlagFor(parameter, command);
        if (GuardPattern().Match(message) is { Success: true } guard)
        {
            var rule = Rule(guard.Groups["rule"].Value);
            return $"{flag ?? Words(guard.Groups["name"].Value)} must be {rule} (got {guard.Groups["value"].Value})";
        }
        if (flag is not null) return actual is null ? $"{message} ({flag})" : $"{message} ({flag}: got {actual})";
        return actual is null ? message : $"{message} (got {actual})";
    }

    /// <summary>.NET's guard wording, in plain words.</summary>
    private static string Rule(string rule)
    {
        static string Bound(string text) => Quoted().Match(text).Groups["bound"].Value;
        return rule switch
        {
            "a non-negative and non-zero value" => "greater than 0",
            "a non-negative value" => "0 or more",
            "a non-zero value" => "other than 0",
            _ when rule.StartsWith("less than or equal to ", StringComparison.Ordinal) => "at most " + Bound(rule["less than or equal to ".Length..]),
            _ when rule.StartsWith("greater than or equal to ", StringComparison.Ordinal) => "at least " + Bound(rule["greater than or equal to ".Length..]),
            _ when rule.StartsWith("less than ", StringComparison.Ordinal) => "less than " + Bound(rule["less than ".Length..]),
            _ when rule.StartsWith("greater than ", StringComparison.Ordinal) => "greater than " + Bound(rule["greater than ".Length..]),
            _ => rule,
        };
    }

    /// <summary>The verb's flag for a parameter or property name (Epochs: --epochs; BatchSize: --batch-size), when it has one.</summary>
    internal static string? FlagFor(string parameter, Command? command)
    {
        if (command is null) return null;
        var last = parameter.Split('.')[^1];
        var key = new string([.. last.Where(char.IsLetterOrDigit)]).ToLower(CultureInfo.InvariantCulture);
        foreach (var option in command.Options.Concat(command.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive))))
        {
            var names = option.Aliases.Append(option.Name);
            if (names.Any(n => new string([.. n.Where(char.IsLetterOrDigit)]).Equals(key, StringComparison.OrdinalIgnoreCase))) return option.Name;
        }
        return null;
    }

    /// <summary>A property name as words (TargetClass: target class).</summary>
    private static string Words(string name) =>
        string.Concat(name.Split('.')[^1].Select((c, i) => char.IsUpper(c) && i > 0 ? " " + char.ToLower(c, CultureInfo.InvariantCulture) : char.ToLower(c, CultureInfo.InvariantCulture).ToString()));
}
