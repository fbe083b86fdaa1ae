using System.Diagnostics;
using System.Text;

namespace SecureMnist.Tests.Cli;

/// <summary>Runs the real securemnist CLI as a child process in a working folder.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly StringBuilder error = new();

    public CliProcess(string workingDirectory, params string[] arguments) : this(workingDirectory, null, arguments)
    {
    }

    /// <summary>Starts the CLI with extra environment variables (e.g. a KEK, or TMPDIR).</summary>
    public CliProcess(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
        : this(workingDirectory, environment, sharedData: true, arguments)
    {
    }

    /// <summary>Starts the CLI; without <paramref name="sharedData"/> it finds its datasets as a user's run would (no --data-root).</summary>
    public CliProcess(string workingDirectory, IReadOnlyDictionary<string, string>? environment, bool sharedData, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "SecureMnist.Cli.dll"));
        if (sharedData)
        {
            start.ArgumentList.Add("--data-root");
            start.ArgumentList.Add(TestPaths.DataRoot);
        }
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (error) error.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => process.Id;

    public string Output { get { lock (output) return output.ToString(); } }
    public string Error { get { lock (error) return error.ToString(); } }

    public static (int ExitCode, string Output, string Error) Run(string workingDirectory, params string[] arguments)
    {
        using var cli = new CliProcess(workingDirectory, arguments);
        var exitCode = cli.WaitForExit(TimeSpan.FromMinutes(5));
        return (exitCode, cli.Output, cli.Error);
    }

    /// <summary>Runs the CLI as a user would from <paramref name="workingDirectory"/>: its own data folder, these environment variables.</summary>
    public static (int ExitCode, string Output, string Error) RunAsUser(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        using var cli = new CliProcess(workingDirectory, environment, sharedData: false, arguments);
        var exitCode = cli.WaitForExit(TimeSpan.FromMinutes(5));
        return (exitCode, cli.Output, cli.Error);
    }

    public int WaitForExit(TimeSpan timeout)
    {
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"securemnist did not finish within {timeout}; stderr: {Error}");
        }
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>Waits until standard error contains the text, then kills the process with SIGKILL.</summary>
    public void KillWhenErrorContains(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Error.Contains(text, StringComparison.Ordinal))
        {
            if (process.HasExited) throw new InvalidOperationException($"process ended before printing '{text}'; stderr: {Error}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"'{text}' not printed within {timeout}; stderr: {Error}");
            Thread.Sleep(20);
        }
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>SIGTERM, as an orchestrator stops a replica: the process shuts down in order (serve writes its final audit checkpoint).</summary>
    public int Stop(TimeSpan timeout)
    {
        if (!process.HasExited)
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
        return WaitForExit(timeout);
    }

    /// <summary>SIGKILL now: no shutdown code runs.</summary>
    public void KillNow()
    {
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    public bool HasExited => process.HasExited;

    /// <summary>For a <c>serve</c> process: polls /readyz until it answers 200; throws with the process's stderr when it exits or the time runs out.</summary>
    public async Task WaitUntilReady(HttpClient client, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (HasExited) throw new InvalidOperationException($"serve exited: {Error}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"serve did not become ready: {Error}");
            try
            {
                if ((await client.GetAsync("/readyz")).StatusCode == System.Net.HttpStatusCode.OK) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(100);
        }
    }

    public void Dispose()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.Dispose();
    }
}
