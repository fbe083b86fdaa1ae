using System.CommandLine;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;
using SecureMnist.Serving;
using TorchSharp;
using SecureMnist.Training;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create()
    {
        var epochs = new Option<int>("--epochs") { Description = "Epochs over the full training set", DefaultValueFactory = _ => 1 };
        var reference = new Option<bool>("--reference") { Description = "Also run bench/reference_train.py (PyTorch from apt python3-torch) on the same data and threads", DefaultValueFactory = _ => true };
        var json = CommonOptions.Json();
        var train = new Command("train", """
            Training throughput (images/s) of the default CNN on the full MNIST training set, measured by the
            trainer itself, beside the PyTorch reference script run with the same thread count.
            """)
        { epochs, reference, json };
        train.SetAction(result =>
        {
            var threads = TorchSharp.torch.get_num_threads();
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist");
            var runDirectory = Path.Combine(Path.GetTempPath(), $"securemnist-bench-{Guid.NewGuid():N}");
            try
            {
                var options = new TrainingOptions { Epochs = result.GetValue(epochs) };
                var run = Ui.WithTrainingProgress("benchmark: training seed-cnn", progress =>
                    new Trainer(options, data, runDirectory).Run(resume: false, progress, CommandRunner.Cancellation.Token));
                run.Network.Dispose();
                var ours = run.Record.Epochs.Sum(e => e.Seconds) is var seconds and > 0 ? run.Record.Epochs.Count * (double)run.Record.TrainImages / seconds : 0;
                ReferenceResult? pytorch = null;
                if (result.GetValue(reference))
                {
                    pytorch = Ui.Err.Status().Start("reference: PyTorch script", _ =>
                        ReferenceBenchmark.Train(Path.Combine("bench", "reference_train.py"), data.Directory, threads, options.Epochs, CommandRunner.Cancellation.Token));
                }
                if (result.GetValue(json))
                {
                    Ui.WriteJson(new { threads, images = run.Record.TrainImages * options.Epochs, securemnistImagesPerSecond = ours, pytorch, machine = run.Record.Machine });
                    return 0;
                }
                var table = new Table().AddColumns("implementation", "images/s", "threads", "details");
                table.AddRow("securemnist (TorchSharp)", $"{ours:F0}", $"{threads}", $"{run.Record.TrainImages * options.Epochs} images, test accuracy after {options.Epochs} epoch(s) {Ui.Percent(run.Test.Accuracy)}");
                if (pytorch is not null) table.AddRow($"PyTorch {pytorch.TorchVersion} reference", $"{pytorch.ImagesPerSecond:F0}", $"{threads}", $"{pytorch.Images} images in {pytorch.Seconds:F1} s");
                Ui.Out.Write(table);
                return 0;
            }
            finally
            {
                if (Directory.Exists(runDirectory)) Directory.Delete(runDirectory, recursive: true);
            }
        });
        return new Command("bench", "Benchmarks, run beside a reference implementation") { train, Attack(), ServeBenchCommand.Create(), ReplicaBenchCommand.Create(), Precision(), ExtractionMonitorBench() };
    }

    private static Command Attack()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var images = new Option<int>("--images") { Description = "Test images attacked per run", DefaultValueFactory = _ => 10000 };
        var steps = new Option<int>("--steps") { Description = "PGD steps (eps 0.3, alpha 0.01, random start)", DefaultValueFactory = _ => 40 };
        var runs = new Option<int>("--runs") { Description = "Timed runs of the optimised path; the median is reported", DefaultValueFactory = _ => 3 };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per batch", DefaultValueFactory = _ => 500 };
        var referenceImages = new Option<int>("--reference-images") { Description = "Images for the PyTorch reference (bench/reference_pgd.py); 0 skips it", DefaultValueFactory = _ => 1000 };
        var also = new Option<string>("--also") { Description = "Further attacks timed once each beside the same PyTorch reference: apgd-ce, apgd-t, square (empty: none)", DefaultValueFactory = _ => "apgd-t,square" };
        var alsoImages = new Option<int>("--also-images") { Description = "Images for each further attack (ours and the reference)", DefaultValueFactory = _ => 200 };
        var squareQueries = new Option<int>("--square-queries") { Description = "Square's queries per input in the further runs", DefaultValueFactory = _ => 1000 };
        var json = CommonOptions.Json();
        var command = new Command("attack", """
            PGD speed in image-steps/s on a verified model: the optimised path (freed activation buffers kept in the
            process, parameters frozen) timed over several runs, the unoptimised path (glibc's default allocator
            behaviour, parameters not frozen) once, a check that both give identical examples, and the PyTorch
            reference on the same weights. Then each --also attack (APGD with 100 steps, APGD-T over 9 targets,
            Square) once, ours beside the reference, in image-steps/s: one forward pass of one image (with its
            backward pass for gradient attacks; one query for Square), counted as the attacks run.
            """)
        { model, publicKey, allowUnsigned, images, steps, runs, batchSize, referenceImages, also, alsoImages, squareQueries, json };
        command.SetAction(result =>
        {
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load("mnist");
            var test = data.Test.Take(result.GetValue(images));
            var attack = new Pgd(new PgdOptions(0.3, 0.01, result.GetValue(steps), Seed: 1));
            var imageSteps = (double)test.Count * result.GetValue(steps);
            var token = CommandRunner.Cancellation.Token;

            var optimised = new List<AttackTiming>();
            for (var run = 0; run < result.GetValue(runs); run++)
            {
                using var frozen = new NetworkClassifier(verified.Network);
                optimised.Add(Ui.Err.Status().Start($"optimised run {run + 1}/{result.GetValue(runs)}", _ => AttackBenchmark.Measure(frozen, test, attack, result.GetValue(batchSize), token)));
                Ui.Info($"optimised run {run + 1}: {imageSteps / optimised[^1].Seconds:F0} image-steps/s");
            }
            AttackTiming plain;
            SecureMnist.Runtime.TorchRuntime.KeepFreedMemory(false);
            try
            {
                using var unfrozen = new NetworkClassifier(verified.Network, freezeParameters: false);
                plain = Ui.Err.Status().Start("unoptimised run", _ => AttackBenchmark.Measure(unfrozen, test, attack, result.GetValue(batchSize), token));
            }
            finally
            {
                SecureMnist.Runtime.TorchRuntime.KeepFreedMemory(true);
            }
            var identical = optimised.All(o => o.Adversarial.AsSpan().SequenceEqual(plain.Adversarial));
            var median = optimised.Select(o => imageSteps / o.Seconds).Order().ElementAt(optimised.Count / 2);

            System.Text.Json.JsonElement? reference = null;
            if (result.GetValue(referenceImages) > 0)
            {
                reference = Ui.Err.Status().Start("reference: PyTorch PGD", _ => ReferenceBenchmark.RunScript(Path.Combine("bench", "reference_pgd.py"),
                    [verified.Directory, data.Directory, "--images", $"{result.GetValue(referenceImages)}", "--steps", $"{result.GetValue(steps)}", "--threads", $"{TorchSharp.torch.get_num_threads()}"], token));
            }
            var referenceRate = reference?.GetProperty("image_steps_per_second").GetDouble();
            var further = new List<(string Attack, double Rate, double Accuracy, System.Text.Json.JsonElement? Reference)>();
            var furtherTest = data.Test.Take(result.GetValue(alsoImages));
            foreach (var name in result.GetValue(also)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (name is not ("apgd-ce" or "apgd-t" or "square")) throw new ArgumentException($"--also: '{name}' is not one of apgd-ce, apgd-t, square");
                var settings = new AttackSettings { Epsilon = 0.3, ApgdSteps = 100, SquareQueries = result.GetValue(squareQueries), Seed = 1 };
                var furtherAttack = AttackCatalog.Create(name, settings);
                using var frozen = new NetworkClassifier(verified.Network);
                var counted = new CountingClassifier(frozen);
                var timing = Ui.Err.Status().Start($"{name} on {furtherTest.Count} images", _ => AttackBenchmark.Measure(counted, furtherTest, furtherAttack, result.GetValue(batchSize), token));
                using var adversarial = TorchSharp.torch.tensor(timing.Adversarial, [furtherTest.Count, 1, 28, 28]);
                var predictions = frozen.Predict(adversarial);
                var accuracy = (double)predictions.Where((p, i) => p == furtherTest.Labels[i]).Count() / furtherTest.Count;
                System.Text.Json.JsonElement? furtherReference = null;
                if (result.GetValue(referenceImages) > 0)
                {
                    furtherReference = Ui.Err.Status().Start($"reference: PyTorch {name}", _ => ReferenceBenchmark.RunScript(Path.Combine("bench", "reference_pgd.py"),
                        [verified.Directory, data.Directory, "--attack", name, "--images", $"{furtherTest.Count}", "--steps", "100", "--queries", $"{result.GetValue(squareQueries)}",
                         "--threads", $"{TorchSharp.torch.get_num_threads()}"], token));
                }
                further.Add((furtherAttack.Name, counted.Images / timing.Seconds, accuracy, furtherReference));
                Ui.Info($"{furtherAttack.Name}: {counted.Images / timing.Seconds:F0} image-steps/s, accuracy {Ui.Percent(accuracy)}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(new
                {
                    images = test.Count, steps = result.GetValue(steps), medianImageStepsPerSecond = median, runs = optimised.Select(o => imageSteps / o.Seconds), unoptimisedImageStepsPerSecond = imageSteps / plain.Seconds, identical, reference,
                    further = further.Select(f => new { attack = f.Attack, images = furtherTest.Count, imageStepsPerSecond = f.Rate, accuracy = f.Accuracy, reference = f.Reference }),
                });
                return identical ? 0 : 1;
            }
            var table = new Table().AddColumns("path", "image-steps/s", "details");
            table.AddRow("securemnist, optimised", $"{median:F0}", $"median of {optimised.Count} runs on {test.Count} images x {result.GetValue(steps)} steps");
            table.AddRow("securemnist, unoptimised", $"{imageSteps / plain.Seconds:F0}", identical ? "[green]identical examples[/]" : "[red]examples differ[/]");
            if (referenceRate is { } rate) table.AddRow($"PyTorch {reference!.Value.GetProperty("torch").GetString()} reference", $"{rate:F0}", $"{reference.Value.GetProperty("images").GetInt32()} images, PGD accuracy {Ui.Percent(reference.Value.GetProperty("accuracy").GetDouble())}");
            foreach (var (name, furtherRate, accuracy, furtherReference) in further)
            {
                table.AddRow(Markup.Escape($"securemnist {name}"), $"{furtherRate:F0}", $"{furtherTest.Count} images, accuracy {Ui.Percent(accuracy)}");
                if (furtherReference is { } r)
                    table.AddRow($"PyTorch {r.GetProperty("attack").GetString()} reference", $"{r.GetProperty("image_steps_per_second").GetDouble():F0}", $"{r.GetProperty("images").GetInt32()} images, accuracy {Ui.Percent(r.GetProperty("accuracy").GetDouble())}");
            }
            Ui.Out.Write(table);
            return identical ? 0 : 1;
        });
        return command;
    }

    private static Command Precision()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var subset = new Option<int?>("--subset") { Description = "Use the first N test images (default: all 10,000)" };
        var eps = new Option<double>("--eps") { Description = "L-inf budget of the FGSM and PGD-40 examples", DefaultValueFactory = _ => 0.3 };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest accuracy or detector-rate gap, in points, for bfloat16 to count as equivalent", DefaultValueFactory = _ => 0.1 };
        var json = CommonOptions.Json();
        var command = new Command("precision", """
            bfloat16 against float32, as `serve --precision` runs them: the model and its adversarial-input detector (feature
            squeezing, calibrated at each precision as the service calibrates it) decide the same inputs: clean test digits,
            FGSM and PGD-40 examples crafted on the float32 model, and Fashion-MNIST. Reports each precision's accuracy and
            rate (feature squeezing alone, and refused as not a digit or flagged), how often the two agree, and the speed of the
            serving forward pass in each.
            Exit code: 0 when every accuracy and rate is within --tolerance points, 1 when one is not.
            Example: ./securemnist bench precision --model models/baseline
            """)
        { model, publicKey, allowUnsigned, subset, eps, tolerance, json };
        command.SetAction(result =>
        {
            var points = result.GetValue(tolerance);
            if (points is < 0 or > 100) throw new ArgumentException($"--tolerance is in points, 0 to 100 (got {points})");
            var options = new PrecisionEquivalenceOptions(result.GetValue(eps), Tolerance: points / 100);
            options.Validate();
            var n = result.GetValue(subset);
            if (n is < 1) throw new ArgumentException($"--subset must be at least 1 (got {n})");
            using var fp32 = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            using var bf16 = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            bf16.Network.to(TorchSharp.torch.ScalarType.BFloat16);
            var store = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var mnist = store.Load("mnist");
            LabeledImages? fashion = null;
            try
            {
                fashion = store.Load("fashion-mnist").Test;
            }
            catch (DatasetException e)
            {
                Ui.Warning($"Fashion-MNIST not available ({e.Message}); its row is skipped");
            }
            var test = n is { } count ? mnist.Test.Take(count) : mnist.Test;
            var report = Ui.Err.Status().Start("comparing precisions", status => PrecisionEquivalence.Run(fp32.Network, bf16.Network, mnist.Train, test,
                n is { } m && fashion is not null ? fashion.Take(Math.Min(m, fashion.Count)) : fashion, options, new Progress<string>(message => status.Status(message)), CommandRunner.Cancellation.Token));
            var exit = report.Equivalent ? 0 : 1;
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { model = fp32.Directory, report.Equivalent, toleranceInPoints = points, report.ThresholdFp32, report.ThresholdBf16, report.ImagesPerSecondFp32, report.ImagesPerSecondBf16, report.Seconds, rows = report.Rows });
                return exit;
            }
            static string Pair(double? a, double? b) => a is { } x && b is { } y ? $"{100 * x:F2} / {100 * y:F2}" : "-";
            var table = new Table().Title("fp32 / bf16, in %").AddColumns("inputs", "n", "accuracy", "squeezing flags", "refused or flagged", "same label", "largest gap");
            foreach (var r in report.Rows)
                table.AddRow(Markup.Escape(r.Inputs), $"{r.Count}", Pair(r.AccuracyFp32, r.AccuracyBf16), Pair(r.SqueezedFp32, r.SqueezedBf16), Pair(r.HeldBackFp32, r.HeldBackBf16),
                    Ui.Percent(r.PredictionsAgree), r.LargestGap <= report.Tolerance + 1e-12 ? $"[green]{100 * r.LargestGap:F2} pt[/]" : $"[red]{100 * r.LargestGap:F2} pt[/]");
            Ui.Out.Write(table);
            Ui.Out.MarkupLineInterpolated($"detector thresholds: fp32 {report.ThresholdFp32:F4}, bf16 {report.ThresholdBf16:F4}; serving forward pass: fp32 {report.ImagesPerSecondFp32:F0} images/s, bf16 {report.ImagesPerSecondBf16:F0} images/s");
            Ui.Out.MarkupLine(report.Equivalent ? $"[green]bf16 is equivalent[/]: every accuracy and detector rate within {points:G} points" : $"[red]bf16 is not equivalent[/]: a gap above {points:G} points");
            return exit;
        });
        return command;
    }

    private static Command ExtractionMonitorBench()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var benignKeys = new Option<int>("--benign-keys") { Description = "Benign keys, each sending --benign-queries random MNIST test digits", DefaultValueFactory = _ => 20 };
        var benignQueries = new Option<int>("--benign-queries") { Description = "Queries per benign key", DefaultValueFactory = _ => 2000 };
        var budget = new Option<int>("--attack-budget") { Description = "Queries each extraction attack may send", DefaultValueFactory = _ => 2000 };
        var json = CommonOptions.Json();
        var command = new Command("extraction-monitor", """
            The service's extraction monitor, fed exactly as serve feeds it (the model's class, the digit statistics and feature
            squeezing calibrated as the service calibrates them, with the default monitor settings): the queries until
            Papernot et al.'s Jacobian-based attack is flagged, whether knockoff attacks from MNIST test digits, Fashion-MNIST
            and noise are, the false alarms on benign keys sending random MNIST test digits, and the monitor's cost per query.
            Exit code: 0, or 1 when a benign key was flagged.
            Example: ./securemnist bench extraction-monitor --model models/baseline
            """) { model, publicKey, allowUnsigned, benignKeys, benignQueries, budget, json };
        command.SetAction(result =>
        {
            var options = new SecureMnist.Attacks.Extraction.MonitorEvaluationOptions(result.GetValue(benignKeys), result.GetValue(benignQueries), result.GetValue(budget));
            options.Validate();
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var store = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!);
            var mnist = store.Load("mnist");
            var pools = new Dictionary<string, IReadOnlyList<float[]>>();
            foreach (var name in SecureMnist.Attacks.Extraction.SurrogatePools.Names)
            {
                try
                {
                    pools[name] = SecureMnist.Attacks.Extraction.SurrogatePools.Load(name, store, seed: 7);
                }
                catch (DatasetException e) when (name == SecureMnist.Attacks.Extraction.SurrogatePools.FashionMnist)
                {
                    Ui.Warning($"Fashion-MNIST not available ({e.Message}); its knockoff attack is skipped");
                }
            }
            var guard = InputGuard.Calibrate(verified.Network, mnist.Train, 2000, new SecureMnist.Defenses.SqueezingOptions());
            var report = Ui.Err.Status().Start("measuring the extraction monitor", status => SecureMnist.Attacks.Extraction.MonitorEvaluation.RunAsync(verified.Network, guard, mnist.Test, pools,
                new ExtractionMonitorOptions(), options, new Progress<string>(m => status.Status(Markup.Escape(m))), CommandRunner.Cancellation.Token).GetAwaiter().GetResult());
            var exit = report.BenignFlagged == 0 ? 0 : 1;
            if (result.GetValue(json))
            {
                Ui.WriteJson(report);
                return exit;
            }
            var table = new Table().Title("extraction monitor (PRADA W, small steps, refusals) as the service runs it").AddColumns("query stream", "queries", "flagged at", "signal", "last W");
            foreach (var s in report.Attacks.Concat(report.Benign.Where(b => b.FlaggedAt is not null)))
                table.AddRow(Markup.Escape(s.Name), $"{s.Queries}", s.FlaggedAt is { } at ? $"query {at}" : "[yellow]missed[/]", s.Signal ?? "-", s.LastW is { } w ? $"{w:F3}" : "-");
            Ui.Out.Write(table);
            Ui.Out.MarkupLineInterpolated($"benign keys flagged: {report.BenignFlagged} of {report.Benign.Count} ({options.BenignQueries} random test digits each; lowest final W {report.Benign.Min(b => b.LastW ?? 1):F3}); monitor cost {report.MicrosecondsPerQuery:F1} µs per query; {report.Seconds:F0} s");
            return exit;
        });
        return command;
    }
}
