using System.CommandLine;
using System.Security.Cryptography;
using SecureMnist.Data;
using SecureMnist.Security;

namespace SecureMnist.Cli;

/// <summary>
/// Runs the parsed command and turns usage errors and the library's expected failures into a plain message and the exit code of
/// <see cref="ExitCodes"/>; with --json the error is also a JSON object on standard output, so a script never reads an empty stdout.
/// </summary>
internal static class CommandRunner
{
    /// <summary>Cancelled by Ctrl+C; long operations stop at the next batch and keep their last checkpoint.</summary>
    public static readonly CancellationTokenSource Cancellation = new();

    public static int Run(RootCommand root, string[] args)
    {
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            Cancellation.Cancel();
        };
        var parsed = root.Parse(args);
        var verb = parsed.CommandResult.Command;
        var json = args.Contains("--json", StringComparer.Ordinal);
        if (parsed.Errors.Count > 0)
        {
            var path = string.Join(' ', verb.Parents.OfType<Command>().Where(c => c is not RootCommand).Reverse().Select(c => c.Name).Append(verb is RootCommand ? "" : verb.Name)).Trim();
            return Fail(ExitCodes.Usage(verb.Name), "usage_error",
                $"{string.Join("; ", parsed.Errors.Select(e => e.Message.TrimEnd('.')))} (see ./securemnist {path}{(path.Length > 0 ? " " : "")}--help)", json);
        }
        {
            var threads = parsed.GetResult(CommonOptions.Threads) is { Implicit: false }
                ? parsed.GetValue(CommonOptions.Threads)
                : parsed.CommandResult.Command.Name == "serve"
                    ? SecureMnist.Runtime.TorchRuntime.ServiceThreads(Environment.ProcessorCount)
                    : Environment.ProcessorCount;
            SecureMnist.Runtime.TorchRuntime.Configure(threads);
        }
        try
        {
            // Help names the program as users type it: the assembly is SecureMnist.Cli (the library is SecureMnist, and assembly names
            // ignore case, so the two cannot be securemnist and SecureMnist).
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = new ProgramNameWriter(Console.Out) });
        }
        catch (Exception e) when (IsUserFacing(e))
        {
            return Fail(verb.Name == "scan" ? ExitCodes.ScanError : ExitCodes.InputError, "input_error", ErrorMessages.Plain(e, verb), json);
        }
        catch (OperationCanceledException)
        {
            return Fail(ExitCodes.Interrupted, "interrupted", "cancelled; long work keeps its last checkpoint", json);
        }
    }

    /// <summary>The message on standard error and, with --json, {"error": {"code", "exitCode", "message"}} on standard output.</summary>
    private static int Fail(int exitCode, string code, string message, bool json)
    {
        if (json) Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { error = new { code, exitCode, message } }, JsonFiles.Options));
        Ui.Error(message);
        return exitCode;
    }

    private static bool IsUserFacing(Exception e) => e is DatasetException or IdxFormatException or ModelPackageException
        or SafetensorsException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException
        or InvalidDataException or CryptographicException or Interop.PyTorchFormatException or Interop.UnsafePickleException
        or Server.ServiceConfigurationException or Microsoft.Extensions.Options.OptionsValidationException or Modeling.ArchitectureSpecException or Interop.OnnxFormatException or HttpRequestException;
}

/// <summary>Writes help text with the assembly's name replaced by the command's, securemnist.</summary>
internal sealed class ProgramNameWriter(TextWriter inner) : TextWriter
{
    private const string AssemblyName = "SecureMnist.Cli";
    private const string CommandName = "securemnist";

    public override System.Text.Encoding Encoding => inner.Encoding;

    public override void Write(char value) => inner.Write(value);

    public override void Write(string? value) => inner.Write(value?.Replace(AssemblyName, CommandName, StringComparison.Ordinal));

    public override void WriteLine(string? value) => inner.WriteLine(value?.Replace(AssemblyName, CommandName, StringComparison.Ordinal));

    public override void Flush() => inner.Flush();
}
