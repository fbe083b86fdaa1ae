using System.CommandLine;
using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.Reporting;
using Spectre.Console;

namespace SecureMnist.Cli.Commands;

internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var publicKey = CommonOptions.PublicKey();
        var allowUnsigned = CommonOptions.AllowUnsigned();
        var dataset = CommonOptions.Dataset();
        var subset = new Option<int?>("--subset") { Description = "Evaluate on the first N test images only" };
        var plot = new Option<string?>("--plot") { Description = "Write the confusion matrix as a heatmap to this file: PNG, or SVG when it ends in .svg" };
        var json = CommonOptions.Json();
        var command = new Command("evaluate", """
            Accuracy, loss, per-class precision/recall/F1 and the confusion matrix of a verified model on a test set.
            Example: ./securemnist evaluate --model models/baseline --plot out/confusion.png
            """)
        { model, publicKey, allowUnsigned, dataset, subset, plot, json };
        command.SetAction(result =>
        {
            using var verified = PackageLoading.Load(result, model, publicKey, allowUnsigned);
            var data = new DatasetStore(result.GetValue(CommonOptions.DataRoot)!).Load(result.GetValue(dataset)!);
            var test = result.GetValue(subset) is { } n ? data.Test.Take(n) : data.Test;
            var report = Evaluator.Evaluate(verified.Network, test, cancellationToken: CommandRunner.Cancellation.Token);
            if (result.GetValue(plot) is { } plotPath)
            {
                ConfusionMatrixPlot.Save(report.ConfusionMatrix, $"{verified.Manifest.Architecture} on {data.Name} test", plotPath);
                Ui.Info($"confusion matrix written to {plotPath}");
            }
            if (result.GetValue(json))
            {
                Ui.WriteJson(new { model = verified.Directory, dataset = data.Name, report });
                return 0;
            }
            Ui.Out.MarkupLineInterpolated($"[bold]{verified.Directory}[/] on {data.Name} test ({report.Images} images): accuracy [bold]{Ui.Percent(report.Accuracy)}[/], loss {report.Loss:F4}, {report.ImagesPerSecond:F0} images/s");
            var classes = new Table().AddColumns("class", "support", "precision", "recall", "F1");
            foreach (var c in report.Classes) classes.AddRow($"{c.Label}", $"{c.Support}", $"{c.Precision:F4}", $"{c.Recall:F4}", $"{c.F1:F4}");
            Ui.Out.Write(classes);
            var matrix = new Table().Title("confusion matrix (rows: true, columns: predicted)").AddColumn("");
            for (var c = 0; c < report.ConfusionMatrix.Length; c++) matrix.AddColumn(new TableColumn($"{c}").RightAligned());
            for (var r = 0; r < report.ConfusionMatrix.Length; r++)
                matrix.AddRow([$"{r}", .. report.ConfusionMatrix[r].Select((count, c) => c == r ? $"[green]{count}[/]" : count == 0 ? "[grey]0[/]" : $"[red]{count}[/]")]);
            Ui.Out.Write(matrix);
            return 0;
        });
        return command;
    }
}
