using System.Diagnostics;
using SecureMnist.Data;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Evaluation;

public sealed record ClassMetrics(int Label, int Support, double Precision, double Recall, double F1);

/// <summary>Accuracy, loss, per-class metrics and the confusion matrix (rows: true label, columns: predicted).</summary>
public sealed record EvaluationReport(
    int Images, double Accuracy, double Loss, IReadOnlyList<ClassMetrics> Classes, int[][] ConfusionMatrix,
    double Seconds, double ImagesPerSecond)
{
    public static EvaluationReport FromPredictions(ReadOnlySpan<byte> labels, ReadOnlySpan<int> predictions, double totalLoss, double seconds, int classCount = 10)
    {
        var matrix = Enumerable.Range(0, classCount).Select(_ => new int[classCount]).ToArray();
        for (var i = 0; i < labels.Length; i++) matrix[labels[i]][predictions[i]]++;
        var correct = Enumerable.Range(0, classCount).Sum(c => matrix[c][c]);
        var classes = new List<ClassMetrics>();
        for (var c = 0; c < classCount; c++)
        {
            var support = matrix[c].Sum();
            var predicted = matrix.Sum(row => row[c]);
            var precision = predicted == 0 ? 0 : (double)matrix[c][c] / predicted;
            var recall = support == 0 ? 0 : (double)matrix[c][c] / support;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            classes.Add(new ClassMetrics(c, support, precision, recall, f1));
        }
        var count = labels.Length;
        return new EvaluationReport(count, count == 0 ? 0 : (double)correct / count, count == 0 ? 0 : totalLoss / count,
            classes, matrix, seconds, seconds > 0 ? count / seconds : 0);
    }
}

/// <summary>Runs a network over a labelled set in inference mode, batch by batch.</summary>
public static class Evaluator
{
    public static EvaluationReport Evaluate(Module<Tensor, Tensor> network, LabeledImages data, int batchSize = 1000,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var wasTraining = network.training;
        network.eval();
        var stopwatch = Stopwatch.StartNew();
        var predictions = new int[data.Count];
        double totalLoss = 0;
        try
        {
            using var inference = inference_mode();
            using var images = data.ImagesTensor();
            using var labels = data.LabelsTensor();
            for (var start = 0; start < data.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, data.Count - start);
                var logits = network.call(images.narrow(0, start, length));
                var batchLabels = labels.narrow(0, start, length);
                totalLoss += functional.cross_entropy(logits, batchLabels, reduction: Reduction.Sum).item<float>();
                var predicted = logits.argmax(1).to(ScalarType.Int32).data<int>().ToArray();
                predicted.CopyTo(predictions, start);
                progress?.Report((start + length, data.Count));
            }
        }
        finally
        {
            network.train(wasTraining);
        }
        return EvaluationReport.FromPredictions(data.Labels, predictions, totalLoss, stopwatch.Elapsed.TotalSeconds);
    }
}
