using System.CommandLine;
using SecureMnist.Data;
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
                        ReferenceBenchmark.Run(Path.Combine("bench", "reference_train.py"), data.Directory, threads, options.Epochs, CommandRunner.Cancellation.Token));
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
        return new Command("bench", "Benchmarks, run beside a reference implementation") { train };
    }
}
