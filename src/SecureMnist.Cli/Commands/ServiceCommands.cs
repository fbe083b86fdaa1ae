using System.CommandLine;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Audit;
using SecureMnist.Defenses;
using SecureMnist.Security;
using SecureMnist.Server;
using SecureMnist.Serving;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

/// <summary>serve, api-keys, audit: running the hardened service and checking what it did.</summary>
internal static class ServiceCommands
{
    public const string DefaultApiKeys = "keys/api-keys.json";
    public const string DefaultAuditDirectory = "runs/audit";
    public const string DefaultAuditKey = "keys/audit.key";

    public static IEnumerable<Command> Create() => [Serve(), ApiKeys(), AuditCommand(), InputChecks()];

    private static Command InputChecks()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var eps = new Option<double>("--eps") { Description = "L-inf budget of the FGSM and PGD-40 examples", DefaultValueFactory = _ => 0.3 };
        var subset = new Option<int?>("--subset") { Description = "Use the first N test images (default: all 10,000)" };
        var calibration = new Option<int>("--calibration-images") { Description = "Training images the squeezing threshold is calibrated on, as the service does", DefaultValueFactory = _ => 2000 };
        var output = new Option<string?>("--out") { Description = "Also write the report as JSON to this file" };
        var adaptiveSteps = new Option<int>("--adaptive-steps") { Description = "Steps of the attack that knows the detector (per squeezing weight; 0: skip it)", DefaultValueFactory = _ => 100 };
        var uncertainty = new Option<string>("--uncertainty") { Description = "Also score inputs by predictive uncertainty and compare with the model's max-softmax: none, mc-dropout (the model with dropout on, --mc-samples passes) or ensemble (--model with the --ensemble packages)", DefaultValueFactory = _ => "none" };
        uncertainty.AcceptOnlyFromAmong("none", "mc-dropout", "ensemble");
        var mcSamples = new Option<int>("--mc-samples") { Description = "Forward passes with dropout on, per input (mc-dropout)", DefaultValueFactory = _ => 20 };
        var ensemble = new Option<string?>("--ensemble") { Description = "Comma-separated packages trained independently of --model (each verified), the other members of the ensemble" };
        var json = CommonOptions.Json();
        var command = new Command("input-checks", """
            Measure the service's input checks exactly as `serve` calibrates them: feature squeezing (adversarial-input
            detection) on clean test digits (FPR) and on FGSM and PGD-40 examples (TPR), and the digit statistics
            (out-of-distribution rejection) on clean MNIST (FPR) and Fashion-MNIST (TPR). Then the detector against an attacker
            who knows it (PGD on the margin minus the squeezing score, straight through the bit-depth rounding): the
            detection-adjusted robust accuracy (inputs still classified correctly or flagged) beside the non-adaptive attacks'.
            With --uncertainty, the ROC AUC of uncertainty scores (1 - max probability, entropy, mutual information) for
            telling clean digits from Fashion-MNIST and from the PGD examples, beside the model's own max-softmax.
            Example: ./securemnist input-checks --model models/baseline --out out/input-checks.json
                     ./securemnist input-checks --model models/a --uncertainty ensemble --ensemble models/b,models/c
            """)
        { model, publicKey, allowUnsigned, eps, subset, calibration, output, adaptiveSteps, uncertainty, mcSamples, ensemble, json };
        command.SetAction(result =>
        {
            var adaptive = result.GetValue(adaptiveSteps) switch
            {
                0 => null,
                > 0 and var steps => new SqueezingAwareOptions(result.GetValue(eps), steps),
                var steps => throw new ArgumentException($"--adaptive-steps must be 0 (skip) or more (got {steps})"),
            };
            adaptive?.Validate();
            var method = result.GetValue(uncertainty)!;
            var samples = result.GetValue(mcSamples);
            var ensemblePaths = (result.GetValue(ensemble) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (method == "mc-dropout" && samples is < 2 or > 1000) throw new ArgumentException($"--mc-samples must be 2 to 1000 (got {samples})");
            if (method == "ensemble" && ensemblePaths.Length == 0) throw new ArgumentException("--uncertainty ensemble needs the other members: --ensemble PKG,PKG");
            if (method != "ensemble" && ensemblePaths.Length > 0) throw new ArgumentException("--ensemble needs --uncertainty ensemble");
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var store = new SecureMnist.Data.DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var mnist = store.Load("mnist");
            SecureMnist.Data.LabeledImages? fashion = null;
            try
            {
                fashion = store.Load("fashion-mnist").Test;
            }
            catch (SecureMnist.Data.DatasetException e)
            {
                Ui.Warning($"Fashion-MNIST not available ({e.Message}); out-of-distribution rates on it are skipped");
            }
            var test = result.GetValue(subset) is { } n ? mnist.Test.Take(n) : mnist.Test;
            var guard = InputGuard.Calibrate(verified.Network, mnist.Train, result.GetValue(calibration), new SqueezingOptions());
            var members = new List<LoadedModel>();
            using var release = new Disposer(members);
            (string, Func<TorchSharp.torch.Tensor, UncertaintyScores>)? scorer = null;
            switch (method)
            {
                case "mc-dropout":
                    if (!verified.Network.modules().Any(m => m is SecureMnist.Modeling.SeededDropout))
                        throw new ArgumentException($"{verified.Directory} ({verified.Manifest.Architecture}) has no dropout layers, so MC dropout would sample one network; use --uncertainty ensemble");
                    scorer = ($"MC dropout ({samples} passes)", x => PredictiveUncertainty.Of(PredictiveUncertainty.McDropout(verified.Network, x, samples, seed: 1)));
                    break;
                case "ensemble":
                    foreach (var member in ensemblePaths) members.Add(PackageLoading.Load(result, member, publicKey, allowUnsigned));
                    var networks = new[] { verified.Network }.Concat(members.Select(m => m.Network)).ToList();
                    scorer = ($"ensemble of {networks.Count}", x => PredictiveUncertainty.Of(PredictiveUncertainty.Ensemble(networks, x)));
                    break;
            }
            var report = AnsiConsole.Status().Start("measuring input checks", status =>
                InputGuardEvaluation.Run(verified.Network, guard, test, fashion is null ? null : (result.GetValue(subset) is { } m ? fashion.Take(m) : fashion),
                    result.GetValue(eps), new Progress<string>(message => status.Status(message)), adaptive, scorer));
            if (result.GetValue(output) is { } path)
            {
                SecureMnist.IO.JsonFormat.Save(path, report);
                Ui.Info($"report written to {path}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(report);
                return 0;
            }
            var table = new Table().AddColumns("inputs", "count", "squeezing flags", "not-a-digit rejects", "either");
            foreach (var rate in report.Rates)
                table.AddRow(Markup.Escape(rate.Inputs), $"{rate.Count}", Ui.Percent(rate.SqueezingFlagged), Ui.Percent(rate.StatisticsRejected), Ui.Percent(rate.Either));
            Ui.Out.Write(table);
            Ui.Info("on clean MNIST the rates are false positives; on attacks and Fashion-MNIST they are detections");
            if (report.DetectionAdjusted is { Count: > 0 } adjusted)
            {
                var robustness = new Table().Title("the model with its detector: an attack succeeds only if the input is misclassified and not flagged")
                    .AddColumns("attack", "knows the detector", "still classified correctly", "detection-adjusted robust", "evaded both");
                foreach (var a in adjusted)
                    robustness.AddRow(Markup.Escape(a.Attack), a.Adaptive ? "yes" : "no", Ui.Percent(a.RobustAccuracy), Ui.Percent(a.DetectionAdjustedAccuracy), Ui.Percent(a.Evaded));
                Ui.Out.Write(robustness);
                Ui.Info("\"still classified correctly\" is the model alone on that attack's examples; an attack that knows the detector trades some of its misclassifications for staying unflagged, so its figure there is not the model's robust accuracy");
            }
            if (report.Uncertainty is { Count: > 0 } separation)
            {
                var aurocs = new Table().Title("uncertainty as an abstain score: ROC AUC for clean test digits against ... (0.5: chance, 1: perfect)")
                    .AddColumns("score", "Fashion-MNIST", "PGD-40 examples (made without knowing the score)");
                foreach (var row in separation)
                    aurocs.AddRow(Markup.Escape(row.Score), row.AurocFashion is { } f ? $"{f:F4}" : "-", row.AurocPgd is { } p ? $"{p:F4}" : "-");
                Ui.Out.Write(aurocs);
            }
            Ui.Out.MarkupLineInterpolated($"squeezing threshold {report.SqueezeThreshold:F4} (L1, calibrated for FPR <= {Ui.Percent(report.Squeezing.FalsePositiveRate)}); {report.Seconds:F0} s");
            return 0;
        });
        return command;
    }

    private static Command Serve()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var apiKeys = new Option<string>("--api-keys") { Description = "API key file (hashes only); add keys with ./securemnist api-keys add", DefaultValueFactory = _ => DefaultApiKeys };
        var auditDir = new Option<string>("--audit-dir") { Description = "Folder of the hash-chained audit log", DefaultValueFactory = _ => DefaultAuditDirectory };
        var auditKey = new Option<string>("--audit-key") { Description = "Ed25519 key that signs audit checkpoints (created on first start)", DefaultValueFactory = _ => DefaultAuditKey };
        var urls = new Option<string>("--urls") { Description = "Address to listen on (loopback by default)", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var abstain = new Option<double>("--abstain-below") { Description = "Withhold answers whose top probability is below this", DefaultValueFactory = _ => new DecisionPolicy().AbstainBelow };
        var onAdversarial = new Option<AdversarialAction>("--on-adversarial") { Description = "What to do with inputs feature squeezing flags: flag (answer, marked), reject, or off (no detector: two fewer forward passes)", DefaultValueFactory = _ => AdversarialAction.Flag };
        var colour = new Option<ColourPolicy>("--colour") { Description = "Colour images: luminance (convert) or reject", DefaultValueFactory = _ => ColourPolicy.Luminance };
        var maxBody = new Option<int>("--max-body-kb") { Description = "Largest request body per image, KiB (413 above)", DefaultValueFactory = _ => 256 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most items in one /v1/predict/batch request", DefaultValueFactory = _ => 32 };
        var timeout = new Option<double>("--timeout") { Description = "Seconds a request may take before it is answered 504", DefaultValueFactory = _ => 10 };
        var precision = CommonOptions.Precision();
        var queue = new Option<int>("--queue") { Description = "Inputs that may wait for the model; beyond this requests get 503", DefaultValueFactory = _ => new BatchingOptions().QueueCapacity };
        var addressRate = new Option<int>("--address-rate") { Description = "Requests per second one client address may send, checked before the API key (429 above; 0: off). Behind a proxy every client shares its address", DefaultValueFactory = _ => ServiceOptions.DefaultRequestsPerSecondPerAddress };
        var modelName = new Option<string>("--model-name") { Description = "The model's name on the Open Inference Protocol routes (/v2/models/NAME/infer)", DefaultValueFactory = _ => "mnist" };
        var logFormat = new Option<ServiceLogFormat>("--log-format") { Description = "Operational log on standard output: json (one object per line, one event per decision), simple, or none", DefaultValueFactory = _ => ServiceLogFormat.Json };
        var logLevel = new Option<Microsoft.Extensions.Logging.LogLevel>("--log-level") { Description = "Least severe log events written (Information: one per decision; Warning: problems only)", DefaultValueFactory = _ => Microsoft.Extensions.Logging.LogLevel.Information };
        var metricsUrls = new Option<string>("--metrics-urls") { Description = "Where Prometheus scrapes the metrics, on a listener of their own without a key (loopback by default; none: off)", DefaultValueFactory = _ => "http://127.0.0.1:9464/metrics" };
        var redis = new Option<string?>("--redis") { Description = "Redis (HOST:PORT) that holds the per-key quotas, shared by every replica pointed at it (default: each process keeps its own)" };
        var redisFailure = new Option<RedisFailureMode>("--redis-failure") { Description = "While Redis cannot be reached: closed (keyed requests get 503) or open (this replica's own quotas; a key may get one quota per replica)", DefaultValueFactory = _ => RedisFailureMode.Closed };
        var replicaId = new Option<string?>("--replica-id") { Description = "This replica's name: its audit log is --audit-dir/NAME (default with --redis: the host name; without: the audit folder itself)" };
        var extraction = new Option<string>("--extraction-monitor")
        {
            Description = "Per-key model-extraction monitoring (PRADA, small-step and refusal shares) and what a flagged key gets: off, flag (audit only), label-only (no scores) or block (403)",
            DefaultValueFactory = _ => "label-only",
        };
        extraction.AcceptOnlyFromAmong("off", "flag", "label-only", "block");
        var kek = new Option<string?>("--kek") { Description = $"Key-encryption key of a sealed package: a file, or env:NAME (default: ${KeyEncryptionKey.EnvironmentVariable} when set); the weights are opened in memory only" };
        var config = new Option<string?>("--config") { Description = $"Settings file (default: {ServiceConfiguration.DefaultFile} in the current folder, when present); its \"Service\" section is overridden by SECUREMNIST__Service__* environment variables, and those by the flags given here" };
        var printConfig = new Option<bool>("--print-config") { Description = "Print the effective configuration (defaults, file, environment and flags merged; secrets redacted) as JSON and exit" };
        var command = new Command("serve", """
            Run the hardened inference service and the drawing page on Kestrel. Only a package signed by --public-key loads;
            until it has loaded (and if it cannot), /readyz answers 503 with the reason. Every answer of the keyed API is
            appended to the audit log, once, before it is sent; refused requests without a valid key are counted instead, one
            record per client address and minute, so an anonymous flood cannot grow the log request by request.
            Example:
              ./securemnist api-keys add --id me --scope predict --scope admin   # prints the key once
              ./securemnist serve --model models/baseline                         # then open http://127.0.0.1:8080
              curl -H "Authorization: Bearer KEY" -H "Content-Type: image/png" --data-binary @digit.png http://127.0.0.1:8080/v1/predict
            Open Inference Protocol v2 on the same keys: POST /v2/models/mnist/infer; OpenAPI document: /openapi/v1.json.
            Configuration: appsettings.json {"Service": {"Urls": ..., "Policy": {"AbstainBelow": 0.9}}}, then SECUREMNIST__Service__Urls=...,
            then these flags; ./securemnist serve --print-config shows the result.
            Replicas: ./securemnist serve --redis 127.0.0.1:6379 --replica-id r1 --urls http://0.0.0.0:8081 (and r2, r3, ...) share
            every key's quota through Redis and each write their own audit log; ./securemnist audit verify runs/audit checks them all.
            """)
        { model, publicKey, apiKeys, auditDir, auditKey, urls, modelName, abstain, onAdversarial, colour, maxBody, maxBatch, timeout, queue, addressRate, precision, logFormat, logLevel, metricsUrls, redis, redisFailure, replicaId, extraction, kek, config, printConfig };
        command.SetAction(result =>
        {
            static string? Text(object? value) => value is null ? null : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
            // Each flag is a setting of the "Service" section: its default is the lowest layer, and it overrides the file and the
            // environment only when given.
            var settings = new (Option Option, string Key, Func<object?, string?> Value)[]
            {
                (model, nameof(ServiceOptions.ModelDirectory), Text), (publicKey, nameof(ServiceOptions.PublicKeyPath), Text),
                (apiKeys, nameof(ServiceOptions.ApiKeysPath), Text), (auditDir, nameof(ServiceOptions.AuditDirectory), Text),
                (auditKey, nameof(ServiceOptions.AuditKeyPath), Text), (CommonOptions.DataRoot, nameof(ServiceOptions.DataRoot), Text),
                (urls, nameof(ServiceOptions.Urls), Text), (modelName, nameof(ServiceOptions.ModelName), Text),
                (maxBody, nameof(ServiceOptions.MaxBodyBytes), v => Text((int)v! * 1024)), (maxBatch, nameof(ServiceOptions.MaxBatchItems), Text),
                (timeout, nameof(ServiceOptions.RequestTimeoutSeconds), Text), (colour, "Images:Colour", Text),
                (abstain, "Policy:AbstainBelow", Text), (onAdversarial, "Policy:OnAdversarial", Text), (queue, "Batching:QueueCapacity", Text),
                (precision, nameof(ServiceOptions.Precision), Text), (addressRate, nameof(ServiceOptions.RequestsPerSecondPerAddress), Text),
                (logFormat, nameof(ServiceOptions.LogFormat), Text), (logLevel, nameof(ServiceOptions.LogLevel), Text),
                (metricsUrls, nameof(ServiceOptions.MetricsUrls), v => Text(v) is "none" ? "" : Text(v)),
                (redis, nameof(ServiceOptions.Redis), Text), (redisFailure, nameof(ServiceOptions.RedisFailure), Text), (replicaId, nameof(ServiceOptions.ReplicaId), Text),
                (kek, nameof(ServiceOptions.KekLocation), Text),
                (extraction, "Extraction:Action", v => Text(v) switch { "label-only" => nameof(ExtractionAction.LabelOnly), var other => other }),
            };
            var defaults = settings.ToDictionary(s => s.Key, s => (string?)s.Value(result.GetResult(s.Option) is { } r ? r.GetValueOrDefault<object?>() : null));
            var given = settings.Where(s => result.GetResult(s.Option) is { Implicit: false }).ToDictionary(s => s.Key, s => (string?)s.Value(result.GetResult(s.Option)!.GetValueOrDefault<object?>()));
            var options = ServiceConfiguration.Bind(ServiceConfiguration.Build(defaults, result.GetValue(config), given));
            if (result.GetValue(printConfig))
            {
                Console.Out.WriteLine(ServiceConfiguration.Describe(options));
                return 0;
            }
            var app = ServiceHost.Build(options);
            using var stop = CommandRunner.Cancellation.Token.Register(() => app.Lifetime.StopApplication());
            var state = (ServiceState)app.Services.GetService(typeof(ServiceState))!;
            app.Lifetime.ApplicationStarted.Register(() => Task.Run(async () =>
            {
                await state.Settled.ConfigureAwait(false);
                if (state.Engine is { } engine)
                    Ui.Success($"ready on {options.Urls}: {options.ModelDirectory} (manifest {engine.Model.ManifestSha256[..16]}...), {engine.Precision.ToString().ToLowerInvariant()}{(options.Precision == InferencePrecision.Auto ? " (auto)" : "")}, {TorchSharp.torch.get_num_threads()} libtorch thread(s), abstain below {engine.Policy.AbstainBelow}, squeezing threshold {engine.Squeezing.Threshold:F4}; audit log {options.AuditLogDirectory}{(!options.SharesQuotas ? "" : $"; quotas shared through Redis at {options.Redis!.Split(',')[0]} (failing {options.RedisFailure.ToString().ToLowerInvariant()})")}");
                else Ui.Error($"NOT ready: {state.NotReadyReason}");
            }));
            app.Run();
            return 0;
        });
        return command;
    }

    private static Command ApiKeys()
    {
        var file = new Option<string>("--file") { Description = "API key file", DefaultValueFactory = _ => DefaultApiKeys };
        var id = new Option<string>("--id") { Description = "Name of the key (letters, digits, - _ .)", Required = true };
        var scopes = new Option<string[]>("--scope") { Description = "predict and/or admin (repeat the option)", DefaultValueFactory = _ => [ApiScopes.Predict], AllowMultipleArgumentsPerToken = false };
        var labelOnly = new Option<bool>("--label-only") { Description = "Answers carry the label and decision only: no confidence, probabilities or saliency" };
        var rpm = new Option<int>("--rpm") { Description = "Images per minute: each image of a batch counts (token bucket; bursts of a tenth, which is also the largest batch the key may send)", DefaultValueFactory = _ => 120 };
        var add = new Command("add", "Create a key; the secret is printed once and only its SHA-256 is stored") { file, id, scopes, labelOnly, rpm };
        add.SetAction(result =>
        {
            var secret = ApiKeyStore.Add(result.GetValue(file)!, result.GetValue(id)!, result.GetValue(scopes)!, result.GetValue(labelOnly), result.GetValue(rpm));
            Ui.Info($"key '{result.GetValue(id)}' added to {result.GetValue(file)}; the secret below is shown once and stored nowhere");
            Console.Out.WriteLine(secret);
            return 0;
        });
        var listFile = new Option<string>("--file") { Description = "API key file", DefaultValueFactory = _ => DefaultApiKeys };
        var json = CommonOptions.Json();
        var list = new Command("list", "Show the keys (ids, scopes, limits; never secrets)") { listFile, json };
        list.SetAction(result =>
        {
            var keys = ApiKeyStore.Load(result.GetValue(listFile)!).Keys;
            var flagged = ExtractionStatusFile.Load(ExtractionStatusFile.For(result.GetValue(listFile)!)).ToDictionary(f => f.KeyId, StringComparer.Ordinal);
            if (result.GetValue(json))
            {
                Ui.WriteJson(keys.Select(k => new { k.Id, k.Scopes, k.LabelOnly, k.RequestsPerMinute, extraction = flagged.TryGetValue(k.Id, out var f) ? f : null }));
                return 0;
            }
            var table = new Table().AddColumns("id", "scopes", "label-only", "images/min", "extraction monitor");
            foreach (var k in keys)
                table.AddRow(Markup.Escape(k.Id), string.Join(",", k.Scopes), k.LabelOnly ? "yes" : "no", $"{k.RequestsPerMinute}",
                    flagged.TryGetValue(k.Id, out var f) ? $"[red]flagged[/] {f.Since:u}: {Markup.Escape(f.Reason ?? f.Signal ?? "")}" : "ok");
            Ui.Out.Write(table);
            return 0;
        });
        var clearFile = new Option<string>("--file") { Description = "API key file", DefaultValueFactory = _ => DefaultApiKeys };
        var clearId = new Option<string>("--id") { Description = "The flagged key", Required = true };
        var clear = new Command("clear-flag", "Clear a key the extraction monitor flagged (its history starts afresh when the service restarts)") { clearFile, clearId };
        clear.SetAction(result =>
        {
            var path = ExtractionStatusFile.For(result.GetValue(clearFile)!);
            var flagged = ExtractionStatusFile.Load(path);
            var id = result.GetValue(clearId)!;
            if (!flagged.Any(f => f.KeyId == id)) throw new ArgumentException($"key '{id}' is not flagged (see ./securemnist api-keys list)");
            ExtractionStatusFile.Save(path, flagged.Where(f => f.KeyId != id));
            Ui.Success($"cleared the extraction flag of '{id}'; restart the service for it to take effect");
            return 0;
        });
        return new Command("api-keys", "Manage the service's API keys") { add, list, clear };
    }

    private static Command AuditCommand()
    {
        var log = new Argument<string>("log") { Description = "Audit log folder (segments in order) or one log file", DefaultValueFactory = _ => DefaultAuditDirectory };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Signed checkpoints kept elsewhere (default: the log folder's own checkpoints.jsonl)" };
        var publicKey = new Option<string>("--public-key") { Description = "The service's audit public key", DefaultValueFactory = _ => Path.ChangeExtension(DefaultAuditKey, ".pub") };
        var json = CommonOptions.Json();
        var verify = new Command("verify", """
            Check the audit log's hash chain and signed checkpoints; names the first bad record and exits 1 on any edit,
            deletion, insertion, reordering or truncation. A checkpoint copied off the machine also catches a rewrite of
            the whole log.
            A folder of replica logs (serve --replica-id) is checked log by log; any bad one fails the run.
            Example: ./securemnist audit verify runs/audit --checkpoint /safe/place/checkpoints.jsonl
            """)
        { log, checkpoint, publicKey, json };
        verify.SetAction(result =>
        {
            var path = result.GetValue(log)!;
            var logs = AuditVerifier.Logs(path);
            var given = result.GetValue(checkpoint);
            if (given is not null && logs.Count > 1)
                throw new ArgumentException($"{path} holds {logs.Count} replica logs, each with its own checkpoints; --checkpoint names one log's, so give that log's folder");
            var verdicts = new List<(string Log, AuditVerification Verdict)>();
            foreach (var one in logs)
            {
                var checkpointPath = given;
                if (checkpointPath is null && Directory.Exists(one) && File.Exists(Path.Combine(one, AuditCheckpoint.CheckpointsFile)))
                {
                    checkpointPath = Path.Combine(one, AuditCheckpoint.CheckpointsFile);
                    Ui.Info($"using the log's own {checkpointPath}; keep copies elsewhere to also catch a rewrite of the whole log");
                }
                var checkpoints = checkpointPath is null ? [] : AuditCheckpoint.ReadAll(checkpointPath);
                var key = checkpoints.Count == 0 ? null : TrustedPublicKey.FromFile(result.GetValue(publicKey)!);
                verdicts.Add((one, AuditVerifier.Verify(one, checkpoints, key)));
            }
            if (result.GetValue(json))
            {
                // One log: its verdict, as before; replica logs: every verdict with its folder, and whether all are intact.
                if (verdicts.Count == 1) Ui.WriteJson(verdicts[0].Verdict);
                else Ui.WriteJson(new { Intact = verdicts.All(v => v.Verdict.Intact), Logs = verdicts.Select(v => new { v.Log, v.Verdict }).ToList() });
            }
            else
                foreach (var (one, verdict) in verdicts)
                {
                    if (verdict.Intact)
                        Ui.Out.MarkupLineInterpolated($"[green]intact[/] {one}: {verdict.Records} records in {verdict.Segments} file(s), head {verdict.Head[..16]}..., {verdict.CheckpointsChecked} signed checkpoint(s) matched");
                    else
                        Ui.Out.MarkupLineInterpolated($"[red]TAMPERED[/] {one}: {verdict.Location}: {verdict.Problem} ({verdict.Records} records verified before it)");
                }
            return verdicts.All(v => v.Verdict.Intact) ? 0 : 1;
        });
        return new Command("audit", "Check the service's audit log") { verify };
    }

    /// <summary>Disposes the extra loaded packages of a command when it ends.</summary>
    private sealed class Disposer(List<LoadedModel> models) : IDisposable
    {
        public void Dispose()
        {
            foreach (var model in models) model.Dispose();
        }
    }
}
