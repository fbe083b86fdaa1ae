using System.CommandLine;
using SecureMnist.Attacks.Extraction;
using SecureMnist.Data;
using SecureMnist.Modeling;
using SecureMnist.Security;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>extract: steal a copy of a model through its query interface and measure what the copy is worth.</summary>
internal static class ExtractCommand
{
    public const string ApiKeyVariable = "SECUREMNIST_API_KEY";

    public static Command Create()
    {
        var target = new Option<string>("--target") { Description = "The victim: a running service's base URL (http://127.0.0.1:8080) or a model package folder", Required = true };
        var apiKey = new Option<string?>("--api-key") { Description = $"API key for a URL target (default: ${ApiKeyVariable}); the attack stays within its quota, waiting out 429s" };
        var quota = new Option<int?>("--quota") { Description = "A URL target: your key's quota in images per minute (api-keys list shows it); the attack paces itself to it instead of waiting out 429s, as an attacker who knows its plan would" };
        var budget = new Option<string>("--budget") { Description = "Query budgets, ascending and comma-separated; the queries of a smaller budget are the first of a larger one", DefaultValueFactory = _ => "500,2000" };
        var access = new Option<string>("--access") { Description = "labels (the label only) or scores (the probabilities as well; soft-label training)", DefaultValueFactory = _ => "labels" };
        access.AcceptOnlyFromAmong("labels", "scores");
        var seedData = new Option<string>("--seed-data") { Description = "The attacker's own images: mnist-test (the first 5,000 test images), fashion-mnist, or noise (uniform)", DefaultValueFactory = _ => "mnist-test" };
        seedData.AcceptOnlyFromAmong([.. SurrogatePools.Names]);
        var strategy = new Option<string>("--strategy") { Description = "knockoff (random queries from the pool) or jacobian (Papernot et al.: seed images, then steps along the substitute's gradient sign)", DefaultValueFactory = _ => "knockoff" };
        strategy.AcceptOnlyFromAmong("knockoff", "jacobian");
        var arch = new Option<string>("--arch") { Description = "The substitute's network", DefaultValueFactory = _ => Architectures.SeedCnn };
        arch.AcceptOnlyFromAmong([.. Architectures.Names]);
        var reference = new Option<string?>("--reference") { Description = "The victim's own package, to measure fidelity and transfer (the defender's side; never queried). Default: --target when it is a package" };
        var transferImages = new Option<int>("--transfer-images") { Description = "Test images (from the last 5,000) attacked with PGD-40 on the copy to measure transfer to the victim", DefaultValueFactory = _ => 1000 };
        var plot = new Option<string?>("--plot") { Description = "Draw fidelity and transfer rate against the queries here: PNG, or SVG when it ends in .svg" };
        var output = new Option<string?>("--out") { Description = "Write the largest budget's copy as a signed package here" };
        var key = new Option<string>("--key") { Description = "Ed25519 key that signs --out", DefaultValueFactory = _ => TrainCommand.DefaultKey };
        var publicKey = CommonOptions.PublicKey();
        var seed = new Option<int>("--seed") { Description = "Seed of the query choice and the substitute's training", DefaultValueFactory = _ => 1 };
        var json = CommonOptions.Json();
        var command = new Command("extract", $"""
            Model extraction through the query interface. Queries the victim (a running service over HTTP with an API key, or a
            package) within each budget, trains a substitute on the answers, and reports per budget: the copy's test accuracy,
            its fidelity (agreement with the victim on the test set), the transfer rate (PGD examples crafted on the copy that
            fool the victim: what a stolen copy is for), and the wall time, including waits for the key's rate limit.
            Test figures use the last 5,000 test images; the mnist-test pool is the first 5,000, so no query is a test image. A knockoff
            budget beyond the pool's size goes round it again with each image shifted by up to 2 pixels, an offset it has not
            had yet, so no query repeats up to 25 times the pool.
            Example: ./securemnist extract --target http://127.0.0.1:8080 --api-key $KEY --reference models/baseline --budget 500,2000 --access scores
            Example: ./securemnist extract --target models/baseline --strategy jacobian --budget 500,2000,10000 --plot extraction.png --json
            """) { target, apiKey, quota, budget, access, seedData, strategy, arch, reference, transferImages, plot, output, key, publicKey, seed, json };
        command.SetAction(result =>
        {
            var budgets = result.GetValue(budget)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(b => int.TryParse(b, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : throw new ArgumentException($"--budget: '{b}' is not a whole number")).ToList();
            var options = new ExtractionOptions(result.GetValue(strategy) == "jacobian" ? ExtractionStrategy.Jacobian : ExtractionStrategy.Knockoff, budgets,
                Architecture: result.GetValue(arch)!, TransferImages: result.GetValue(transferImages), Seed: result.GetValue(seed));
            options.Validate();
            var scores = result.GetValue(access) == "scores";
            var targetValue = result.GetValue(target)!;
            var isUrl = Uri.TryCreate(targetValue, UriKind.Absolute, out var url) && url.Scheme is "http" or "https";
            var referencePath = result.GetValue(reference) ?? (isUrl ? throw new ArgumentException("a URL target needs --reference PKG (the victim's own package) to measure fidelity and transfer") : targetValue);
            var store = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var mnist = store.Load("mnist");
            var test = mnist.Test.Select([.. Enumerable.Range(5000, 5000)]);
            var pool = SurrogatePools.Load(result.GetValue(seedData)!, store, result.GetValue(seed), size: 10_000);
            using var trusted = ModelPackage.Load(referencePath, TrustedPublicKey.FromFile(result.GetValue(publicKey)!));
            using var http = isUrl ? new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) } : null;
            IVictim victim;
            if (isUrl)
            {
                var secret = result.GetValue(apiKey) ?? Environment.GetEnvironmentVariable(ApiKeyVariable)
                    ?? throw new ArgumentException($"a URL target needs an API key: --api-key KEY or ${ApiKeyVariable}");
                var perMinute = result.GetValue(quota);
                if (perMinute is < 1 or > 10_000_000) throw new ArgumentException($"--quota must be 1 to 10,000,000 images per minute (got {perMinute})");
                victim = new HttpVictim(http!, secret, scores, perMinute is { } q ? new QueryPacer(q) : null);
            }
            else victim = new PackageVictim(trusted.Network, scores);
            var started = System.Diagnostics.Stopwatch.StartNew();
            var saved = result.GetValue(output);
            var report = Ui.Err.Status().Start("extracting", status => ModelExtraction.RunAsync(victim, pool, result.GetValue(seedData)!, test, trusted.Network, options,
                new Progress<string>(m => status.Status(Markup.Escape(m))), CommandRunner.Cancellation.Token, keepLast: saved is null ? null : copy =>
                {
                    var (signingKey, _) = TrainingPipeline.OpenOrCreateKey(result.GetValue(key)!, createIfMissing: result.GetValue(key) == TrainCommand.DefaultKey);
                    using (signingKey) ModelPackage.Write(saved, options.Architecture, copy, new ModelPackage.Provenance(null, null, null, null), signingKey);
                }).GetAwaiter().GetResult());
            var wall = started.Elapsed.TotalSeconds;
            if (result.GetValue(plot) is { } plotPath)
                SecureMnist.Reporting.ExtractionPlot.Save(plotPath, $"{result.GetValue(strategy)} extraction of {targetValue} (pool {report.Pool})", [report]);
            var waited = victim is HttpVictim h ? (h.RateLimited, h.WaitedSeconds + (h.Pacer?.WaitedSeconds ?? 0)) : (0, 0.0);
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { target = targetValue, reference = referencePath, access = scores ? "scores" : "labels", seedData = report.Pool, strategy = result.GetValue(strategy), report.VictimAccuracy,
                    points = report.Points, wallSeconds = wall, rateLimited = waited.Item1, waitedSeconds = waited.Item2, output = saved, plot = result.GetValue(plot) });
                return 0;
            }
            var table = new Table().Title($"{result.GetValue(strategy)} extraction of {Markup.Escape(targetValue)} ({(scores ? "scores" : "labels")}, pool {Markup.Escape(report.Pool)}); victim accuracy {Ui.Percent(report.VictimAccuracy)}")
                .AddColumns("queries", "answered", "copy accuracy", "fidelity", "transfer (PGD on the copy fools the victim)", "query s", "train s");
            foreach (var p in report.Points)
                table.AddRow($"{p.Budget}", $"{p.Answered}", Ui.Percent(p.SubstituteAccuracy), Ui.Percent(p.Fidelity), $"{Ui.Percent(p.TransferRate)} of {p.TransferImages}", $"{p.QuerySeconds:F1}", $"{p.TrainSeconds:F1}");
            Ui.Out.Write(table);
            if (waited.Item1 > 0 || waited.Item2 > 0) Ui.Info($"{waited.Item1} requests were rate limited; {waited.Item2:F0} s spent waiting (for refused requests, and for the quota when paced)");
            if (saved is not null) Ui.Info($"the largest budget's copy is in {saved}");
            if (result.GetValue(plot) is { } drawn) Ui.Info($"plot: {drawn}");
            return 0;
        });
        return command;
    }
}
