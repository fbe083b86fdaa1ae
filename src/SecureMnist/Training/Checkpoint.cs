using System.Text.Json;
using System.Text.Json.Serialization;
using SecureMnist.IO;
using SecureMnist.Security;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Training;

/// <summary>The commit record of a checkpoint: which epoch finished, and the digests of the files it wrote (the weight average's when the run keeps one).</summary>
public sealed record CheckpointState(int CompletedEpochs, string WeightsSha256, string OptimizerSha256, RunRecord Record, string? AverageSha256 = null);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(CheckpointState))]
internal sealed partial class CheckpointJsonContext : JsonSerializerContext;

/// <summary>
/// An end-of-epoch checkpoint in a run folder: weights (safetensors), optimizer state, and
/// checkpoint.json written last as the commit record, so a crash at any point leaves either the
/// previous checkpoint or the new one, never a mix.
/// </summary>
public static class Checkpoint
{
    public const string WeightsFile = "checkpoint.safetensors";
    public const string OptimizerFile = "optimizer.bin";
    public const string StateFile = "checkpoint.json";
    public const string AverageFile = "average.safetensors";

    public static void Save(string runDirectory, Module<Tensor, Tensor> network, OptimizerHelper optimizer, int completedEpochs, RunRecord record,
        Module<Tensor, Tensor>? average = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var weights = Safetensors.Serialize(ModelWeights.Export(network));
        byte[] optimizerState;
        using (var memory = new MemoryStream())
        {
            using (var writer = new BinaryWriter(memory, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(writer);
            optimizerState = memory.ToArray();
        }
        // Files carry the epoch in their names so the previous checkpoint stays intact until the commit record moves.
        var weightsName = $"epoch-{completedEpochs:D3}.{WeightsFile}";
        var optimizerName = $"epoch-{completedEpochs:D3}.{OptimizerFile}";
        AtomicFile.WriteAllBytes(Path.Combine(runDirectory, weightsName), weights);
        AtomicFile.WriteAllBytes(Path.Combine(runDirectory, optimizerName), optimizerState);
        var averageName = $"epoch-{completedEpochs:D3}.{AverageFile}";
        string? averageSha256 = null;
        if (average is not null)
        {
            var averageWeights = Safetensors.Serialize(ModelWeights.Export(average));
            AtomicFile.WriteAllBytes(Path.Combine(runDirectory, averageName), averageWeights);
            averageSha256 = ModelPackage.Sha256(averageWeights);
        }
        var state = new CheckpointState(completedEpochs, ModelPackage.Sha256(weights), ModelPackage.Sha256(optimizerState), record, averageSha256);
        AtomicFile.WriteAllBytes(Path.Combine(runDirectory, StateFile), JsonSerializer.SerializeToUtf8Bytes(state, CheckpointJsonContext.Default.CheckpointState));
        foreach (var stale in Directory.EnumerateFiles(runDirectory, "epoch-*").Where(f => !f.EndsWith(weightsName, StringComparison.Ordinal) && !f.EndsWith(optimizerName, StringComparison.Ordinal) && !f.EndsWith(averageName, StringComparison.Ordinal)))
            File.Delete(stale);
    }

    public static CheckpointState? TryReadState(string runDirectory)
    {
        var path = Path.Combine(runDirectory, StateFile);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), CheckpointJsonContext.Default.CheckpointState);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is corrupt: {e.Message}");
        }
    }

    /// <summary>Restores network, optimizer and (when given) the weight average from the committed checkpoint, after checking their digests.</summary>
    public static void Restore(string runDirectory, CheckpointState state, Module<Tensor, Tensor> network, OptimizerHelper optimizer, Module<Tensor, Tensor>? average = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(optimizer);
        var weights = File.ReadAllBytes(Path.Combine(runDirectory, $"epoch-{state.CompletedEpochs:D3}.{WeightsFile}"));
        var optimizerState = File.ReadAllBytes(Path.Combine(runDirectory, $"epoch-{state.CompletedEpochs:D3}.{OptimizerFile}"));
        if (ModelPackage.Sha256(weights) != state.WeightsSha256 || ModelPackage.Sha256(optimizerState) != state.OptimizerSha256)
            throw new InvalidDataException($"checkpoint files in {runDirectory} do not match {StateFile}; the checkpoint is damaged");
        ModelWeights.Load(network, Safetensors.Parse(weights));
        if (average is not null)
        {
            var averageWeights = state.AverageSha256 is null ? null : File.ReadAllBytes(Path.Combine(runDirectory, $"epoch-{state.CompletedEpochs:D3}.{AverageFile}"));
            if (averageWeights is null || ModelPackage.Sha256(averageWeights) != state.AverageSha256)
                throw new InvalidDataException($"the weight average in {runDirectory} is missing or does not match {StateFile}; the checkpoint is damaged");
            ModelWeights.Load(average, Safetensors.Parse(averageWeights));
        }
        using var memory = new MemoryStream(optimizerState);
        using var reader = new BinaryReader(memory);
        optimizer.load_state_dict(reader);
    }
}
