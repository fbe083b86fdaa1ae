using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Extraction;
using SecureMnist.Data;
using SecureMnist.IO;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary><c>attack --target URL</c>: the black-box attacks against a running service, within a query budget.</summary>
internal static class RemoteAttack
{
    public const string ApiKeyVariable = "SECUREMNIST_API_KEY";

    public static int Run(string url, string? apiKey, long? budget, int? quota, string attackNames, AttackSettings settings, Dataset data, int images,
        string outputDirectory, bool json)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--target '{url}' is not an http(s) URL");
        var key = apiKey ?? Environment.GetEnvironmentVariable(ApiKeyVariable)
            ?? throw new ArgumentException($"--target needs an API key: --api-key or the {ApiKeyVariable} environment variable");
        var names = attackNames.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.FirstOrDefault(n => !RemoteClassifier.BlackBoxAttacks.Contains(n)) is { } whiteBox)
            throw new ArgumentException($"--attacks {whiteBox}: a remote model gives no gradients; with --target use {string.Join(" or ", RemoteClassifier.BlackBoxAttacks)}");
        if (budget is not { } total) throw new ArgumentException("--target needs --budget N, the total queries the attack may send");
        var perInput = RemoteClassifier.QueriesPerInput(total, images);
        settings = settings with
        {
            SquareQueries = (int)Math.Min(perInput, SquareOptions.MaxQueries),
            HopSkipJumpQueries = (int)Math.Min(perInput, HopSkipJumpOptions.MaxQueries),
        };
        var attackList = AttackCatalog.Parse(attackNames, settings);
        var test = data.Test.Take(images);
        using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
        // Decision-based attacks alone need labels only: they ask for no scores, so label-only keys can be attacked too.
        var decisionsOnly = names.All(n => RemoteClassifier.DecisionAttacks.Contains(n));
        var victim = new HttpVictim(client, key, scores: !decisionsOnly, quota is { } q ? new QueryPacer(q) : null);
        var classifier = new RemoteClassifier(victim, CommandRunner.Cancellation.Token, decisionsOnly);
        var run = Ui.WithAttackProgress(attackList.Select(a => a.Name).ToList(), progress =>
            AttackEvaluator.Run(classifier, test, attackList, batchSize: Math.Min(100, images), progress, CommandRunner.Cancellation.Token));
        var document = new
        {
            target = address.ToString(), dataset = data.Name, images = test.Count, budget = total, queriesUsed = classifier.Queries, queriesPerInput = perInput,
            access = decisionsOnly ? "labels" : "scores", refused = classifier.Refused,
            rateLimited = victim.RateLimited, waitedSeconds = victim.WaitedSeconds, attacks = attackList.Select(a => a.Name).ToList(), report = run.Report,
        };
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, "report.json"), System.Text.Json.JsonSerializer.Serialize(document, JsonFiles.Options));
        if (json)
        {
            Ui.WriteJson(document);
            return 0;
        }
        Ui.Out.MarkupLineInterpolated($"{address}: clean accuracy [bold]{Ui.Percent(run.Report.CleanAccuracy)}[/], robust accuracy [bold]{Ui.Percent(run.Report.RobustAccuracy)}[/] on {test.Count} inputs");
        Ui.Out.MarkupLineInterpolated($"queries used [bold]{classifier.Queries:N0}[/] of {total:N0} ({perInput:N0} per input for the attack), {classifier.Refused:N0} {(decisionsOnly ? "answered without a label (the service abstained)" : "answered without scores (withheld, or the key cut down to labels by the service)")}; {victim.RateLimited} refused with 429, {victim.WaitedSeconds:F1} s waited; {run.Report.Seconds:F1} s");
        Ui.Out.MarkupLineInterpolated($"written to [bold]{outputDirectory}[/]: report.json");
        return 0;
    }
}
