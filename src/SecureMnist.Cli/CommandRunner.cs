using System.CommandLine;
using System.Security.Cryptography;
using SecureMnist.Data;
using SecureMnist.Security;

namespace SecureMnist.Cli;

/// <summary>Runs the parsed command and turns the library's expected failures into a message and exit code 1.</summary>
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
        if (parsed.Errors.Count == 0)
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
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserFacing(e))
        {
            Ui.Error(e.Message);
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
    }

    private static bool IsUserFacing(Exception e) => e is DatasetException or IdxFormatException or ModelPackageException
        or SafetensorsException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException
        or InvalidDataException or CryptographicException or Interop.PyTorchFormatException or Interop.UnsafePickleException
        or Server.ServiceConfigurationException or Microsoft.Extensions.Options.OptionsValidationException;
}
