using System.Text.Json;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli;

/// <summary>Console rendering: results on standard output, progress and messages on standard error.</summary>
internal static class Ui
{
    public static readonly IAnsiConsole Out = Create(Console.Out, Console.IsOutputRedirected);
    public static readonly IAnsiConsole Err = Create(Console.Error, Console.IsErrorRedirected);

    /// <summary>
    /// A console on the writer. Redirected output (a pipe, a file, a CI log) is not wrapped: a terminal's 80 columns would break long
    /// paths and every line-oriented parser.
    /// </summary>
    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
        if (redirected) console.Profile.Width = UnwrappedWidth;
        return console;
    }

    /// <summary>The width of a redirected console: wide enough that no line of ours wraps.</summary>
    public const int UnwrappedWidth = 4096;

    public static void Error(string message) => Err.MarkupLineInterpolated($"[red]error:[/] {message}");
    public static void Warning(string message) => Err.MarkupLineInterpolated($"[yellow]warning:[/] {message}");
    public static void Info(string message) => Err.MarkupLineInterpolated($"[grey]{message}[/]");
    public static void Success(string message) => Err.MarkupLineInterpolated($"[green]{message}[/]");

    public static void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonFiles.Options));

    public static string Percent(double fraction) => (100 * fraction).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "%";

    /// <summary>One progress bar per attack when the terminal is interactive, else a line as each attack finishes.</summary>
    public static T WithAttackProgress<T>(IReadOnlyList<string> attacks, Func<IProgress<SecureMnist.Attacks.Evasion.AttackProgress>, T> work)
    {
        if (!Err.Profile.Capabilities.Interactive)
        {
            // Logs and scripts get a line at most once a minute within a stage, so a stage of an hour does not look stalled, and one at its end.
            var stage = -1;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var lastLine = TimeSpan.Zero;
            return work(new SyncProgress<SecureMnist.Attacks.Evasion.AttackProgress>(p =>
            {
                if (p.AttackIndex != stage)
                {
                    stage = p.AttackIndex;
                    watch.Restart();
                    lastLine = TimeSpan.Zero;
                }
                if (p.Done == p.Total) Info($"{p.Attack}: {p.Total} inputs attacked in {watch.Elapsed.TotalSeconds:F0} s (attack {p.AttackIndex} of {p.Attacks})");
                else if (watch.Elapsed - lastLine >= TimeSpan.FromMinutes(1) && p.Done > 0)
                {
                    lastLine = watch.Elapsed;
                    var left = watch.Elapsed.TotalSeconds * (p.Total - p.Done) / p.Done;
                    Info($"{p.Attack}: {p.Done} of {p.Total} inputs ({100.0 * p.Done / p.Total:F0}%) in {watch.Elapsed.TotalSeconds:F0} s, about {left:F0} s left (attack {p.AttackIndex} of {p.Attacks})");
                }
            }));
        }
        T result = default!;
        Err.Progress().AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var tasks = attacks.Select(a => context.AddTask(a, maxValue: 1)).ToList();
                result = work(new SyncProgress<SecureMnist.Attacks.Evasion.AttackProgress>(p =>
                {
                    for (var i = 0; i < p.AttackIndex - 1; i++) tasks[i].Value = 1;
                    tasks[p.AttackIndex - 1].Value = p.Total == 0 ? 1 : (double)p.Done / p.Total;
                }));
                foreach (var task in tasks) task.Value = 1;
            });
        return result;
    }

    /// <summary>Shows a live progress bar for training when the terminal is interactive, else one line per epoch.</summary>
    public static T WithTrainingProgress<T>(string title, Func<IProgress<TrainingProgress>, T> work)
    {
        if (!Err.Profile.Capabilities.Interactive)
        {
            return work(new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Completed is { } e)
                {
                    var held = e.ValidationAccuracy is { } v ? $"validation accuracy {Percent(v)}" : e.TestAccuracy is { } t ? $"test accuracy {Percent(t)}" : "";
                    Info($"epoch {p.Epoch}/{p.Epochs}: loss {e.TrainLoss:F4}, train accuracy {Percent(e.TrainAccuracy)}, {held}, {e.ImagesPerSecond:F0} images/s, {e.Seconds:F1} s; checkpoint saved");
                }
            }));
        }
        T result = default!;
        Err.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(title, maxValue: 1);
                result = work(new SyncProgress<TrainingProgress>(p =>
                {
                    var done = p.Batches == 0 ? 1 : ((p.Epoch - 1) + (double)p.Batch / p.Batches) / p.Epochs;
                    task.Value = Math.Min(done, 1);
                    if (p.Completed is { } e)
                        Err.MarkupLineInterpolated($"[grey]epoch {p.Epoch}/{p.Epochs}: loss {e.TrainLoss:F4}, train {Percent(e.TrainAccuracy)}, held-out {Percent(e.ValidationAccuracy ?? e.TestAccuracy ?? 0)}, {e.ImagesPerSecond:F0} img/s[/]");
                    task.Description = p.Phase == "training"
                        ? $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F4} acc {Percent(p.Accuracy)} {p.ImagesPerSecond:F0} img/s ETA {p.Remaining:hh\\:mm\\:ss}"
                        : $"epoch {p.Epoch}/{p.Epochs} {p.Phase}";
                }));
                task.Value = 1;
            });
        return result;
    }
}

/// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
