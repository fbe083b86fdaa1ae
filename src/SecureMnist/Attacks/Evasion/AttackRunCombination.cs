using System.Security.Cryptography;
using System.Text.Json;
using SecureMnist.Data;
using SecureMnist.Evaluation;
using SecureMnist.IO;

namespace SecureMnist.Attacks.Evasion;

/// <summary>The threat model a robustness run measured: one norm and one budget.</summary>
public sealed record ThreatModel(string Norm, double Epsilon)
{
    public static ThreatModel Of(IReadOnlyList<IEvasionAttack> attacks)
    {
        ArgumentNullException.ThrowIfNull(attacks);
        if (attacks.Count == 0) throw new ArgumentException("no attack", nameof(attacks));
        AttackCatalog.RequireOneThreatModel(attacks);
        return new ThreatModel(AttackCatalog.NormName(attacks[0].Norm), attacks[0].Epsilon);
    }
}

/// <summary>
/// Which images a run attacked: [Start, End) of a test set of <paramref name="TestImages"/> images whose pixels and labels hash to
/// <paramref name="TestSha256"/>. The digest is of the content, so runs on one test set combine whatever folder it was loaded from.
/// </summary>
public sealed record AttackedInputs(string Dataset, int TestImages, string TestSha256, int Start, int End)
{
    public static AttackedInputs Of(string dataset, LabeledImages test, int start, int end)
    {
        ArgumentNullException.ThrowIfNull(test);
        if (start < 0 || end > test.Count || end <= start) throw new ArgumentOutOfRangeException(nameof(start), $"[{start}, {end}) is not inside {test.Count} images");
        return new AttackedInputs(dataset, test.Count, ContentSha256(test), start, end);
    }

    /// <summary>SHA-256 over the image size, the pixels and the labels.</summary>
    public static string ContentSha256(LabeledImages images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(BitConverter.GetBytes(images.Rows));
        hash.AppendData(BitConverter.GetBytes(images.Columns));
        hash.AppendData(images.Pixels);
        hash.AppendData(images.Labels);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}

/// <summary>One saved attack run (report.json and adversarial/ from <c>attack</c>): what it attacked, and per input whether it stayed robust.</summary>
public sealed record SavedAttackRun(
    string Directory, string ModelManifestSha256, ThreatModel ThreatModel, AttackedInputs Inputs, IReadOnlyList<string> Attacks, byte[] Labels, bool[] Robust)
{
    public const string ReportFile = "report.json";

    /// <summary>Reads a run folder. An input is robust when the model still classifies its kept example correctly: attack keeps the clean image
    /// for an input it did not break, so a clean mistake stays a mistake.</summary>
    public static SavedAttackRun Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var reportPath = Path.Combine(directory, ReportFile);
        if (!File.Exists(reportPath)) throw new FileNotFoundException($"{directory} is not an attack run: {ReportFile} not found", reportPath);
        var bytes = JsonFormat.ReadBounded(reportPath);
        try
        {
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            if (root.TryGetProperty("target", out var target))
                throw new InvalidDataException($"{directory} attacked a service ({target}), not a package: its inputs and model cannot be matched to other runs, so it is not combined");
            if (!root.TryGetProperty("inputs", out var inputs) || !root.TryGetProperty("threatModel", out var threat))
                throw new InvalidDataException($"{directory} was saved by a version of attack that did not record which inputs it attacked; run it again to combine it");
            var attacked = new AttackedInputs(inputs.GetProperty("dataset").GetString()!, inputs.GetProperty("testImages").GetInt32(),
                inputs.GetProperty("testSha256").GetString()!, inputs.GetProperty("start").GetInt32(), inputs.GetProperty("end").GetInt32());
            if (attacked.Start < 0 || attacked.End <= attacked.Start || attacked.End > attacked.TestImages)
                throw new InvalidDataException($"{reportPath}: inputs [{attacked.Start}, {attacked.End}) do not lie inside {attacked.TestImages} test images");
            var model = new ThreatModel(threat.GetProperty("norm").GetString()!, threat.GetProperty("epsilon").GetDouble());
            var attacks = root.GetProperty("attacks").EnumerateArray().Select(a => a.GetString()!).ToList();
            var reported = root.GetProperty("report");
            var robustCount = (int)Math.Round(reported.GetProperty("robustAccuracy").GetDouble() * reported.GetProperty("images").GetInt32());

            var adversarial = Path.Combine(directory, "adversarial");
            var labels = IdxReader.ReadLabels(Path.Combine(adversarial, AdversarialSet.LabelsFile));
            var predictions = IdxReader.ReadLabels(Path.Combine(adversarial, AdversarialSet.PredictionsFile));
            var images = attacked.End - attacked.Start;
            if (labels.Length != images || predictions.Length != images)
                throw new InvalidDataException($"{directory}: report.json covers {images} inputs, adversarial/ holds {labels.Length} labels and {predictions.Length} predictions");
            var robust = labels.Select((label, i) => predictions[i] == label).ToArray();
            if (robust.Count(r => r) != robustCount)
                throw new InvalidDataException($"{directory}: adversarial/ has {robust.Count(r => r)} robust inputs where report.json says {robustCount}; the folder was changed after the run");
            return new SavedAttackRun(directory, root.GetProperty("modelManifestSha256").GetString()!, model, attacked, attacks, labels, robust);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{reportPath}: not an attack report ({e.Message})");
        }
    }
}

/// <summary>Inputs that the same set of attacks covered, and how many of them stayed robust.</summary>
public sealed record CoverageGroup(IReadOnlyList<string> Attacks, int Images, int Robust, double RobustAccuracy, Interval RobustInterval95, IReadOnlyList<string> Ranges);

/// <summary>
/// Several runs on one model, test set and threat model joined per input: an input counts as robust only if every run that attacked it
/// left it robust. <see cref="Coverage"/> tells which attacks stand behind which inputs; <see cref="Uncovered"/> lists test images no run attacked.
/// </summary>
public sealed record CombinedRobustness(
    string ModelManifestSha256, ThreatModel ThreatModel, string Dataset, int TestImages, int Images, int Robust, double RobustAccuracy, Interval RobustInterval95,
    IReadOnlyList<CoverageGroup> Coverage, IReadOnlyList<string> Uncovered, IReadOnlyList<string> Runs)
{
    /// <summary>Every test image was attacked, and by the same attacks.</summary>
    public bool Uniform => Coverage.Count == 1 && Uncovered.Count == 0;

    /// <summary>Why the figure is not one standard over the whole test set, or null when it is.</summary>
    public string? Caveat
    {
        get
        {
            if (Uniform) return null;
            var reasons = new List<string>();
            if (Coverage.Count > 1) reasons.Add("different attacks cover different images");
            if (Uncovered.Count > 0) reasons.Add($"no run attacked {TestImages - Images} of the {TestImages} test images");
            return $"not one standard over the whole test set: {string.Join("; ", reasons)}";
        }
    }
}

/// <summary>Joins attack runs that split a long evaluation by range, or that added attacks later, into one per-input worst case.</summary>
public static class AttackRunCombination
{
    public static CombinedRobustness Combine(IReadOnlyList<SavedAttackRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new ArgumentException("combine needs at least one attack run");
        var first = runs[0];
        var paths = runs.Select(r => Path.GetFullPath(r.Directory)).ToList();
        if (paths.Distinct().Count() != paths.Count) throw new ArgumentException("a run is listed twice");
        foreach (var run in runs.Skip(1))
        {
            if (run.ModelManifestSha256 != first.ModelManifestSha256)
                throw new ArgumentException($"{run.Directory} attacked another model than {first.Directory} (manifest SHA-256 {Short(run.ModelManifestSha256)} against {Short(first.ModelManifestSha256)})");
            if (run.ThreatModel.Norm != first.ThreatModel.Norm || Math.Abs(run.ThreatModel.Epsilon - first.ThreatModel.Epsilon) > 1e-12)
                throw new ArgumentException($"{run.Directory} measured {Describe(run.ThreatModel)} and {first.Directory} {Describe(first.ThreatModel)}; one robust accuracy over several threat models means nothing");
            if (run.Inputs.TestSha256 != first.Inputs.TestSha256)
                throw new ArgumentException($"{run.Directory} attacked another test set than {first.Directory} ({run.Inputs.Dataset} against {first.Inputs.Dataset}: the images or labels differ)");
        }

        // State is kept only for the inputs some run attacked, so the work is bounded by the runs' own data, not by the test-set size
        // a report claims.
        var total = first.Inputs.TestImages;
        var joined = new SortedDictionary<int, JoinedInput>();
        var order = runs.SelectMany(r => r.Attacks).Distinct().ToList();
        foreach (var run in runs)
        {
            var positions = run.Attacks.Select(a => order.IndexOf(a)).ToArray();
            for (var k = 0; k < run.Robust.Length; k++)
            {
                var i = run.Inputs.Start + k;
                if (joined.TryGetValue(i, out var input))
                {
                    if (input.Label != run.Labels[k])
                        throw new InvalidDataException($"{run.Directory} labels test image {i} as {run.Labels[k]} where another run has {input.Label}");
                }
                else joined[i] = input = new JoinedInput(run.Labels[k]);
                input.Robust &= run.Robust[k];
                input.Attacks.UnionWith(positions);
            }
        }

        var groups = new List<CoverageGroup>();
        foreach (var group in joined.GroupBy(pair => string.Join(',', pair.Value.Attacks)))
        {
            var indices = group.Select(pair => pair.Key).ToList();
            var held = group.Count(pair => pair.Value.Robust);
            groups.Add(new CoverageGroup(group.First().Value.Attacks.Select(a => order[a]).ToList(), indices.Count, held, (double)held / indices.Count,
                BinomialInterval.Wilson(held, indices.Count), Ranges(indices)));
        }
        var images = joined.Count;
        var robustCount = joined.Values.Count(input => input.Robust);
        return new CombinedRobustness(first.ModelManifestSha256, first.ThreatModel, first.Inputs.Dataset, total, images, robustCount, (double)robustCount / images,
            BinomialInterval.Wilson(robustCount, images), groups, Gaps(joined.Keys.ToList(), total), runs.Select(r => r.Directory).ToList());
    }

    private sealed class JoinedInput(byte label)
    {
        public byte Label { get; } = label;
        public bool Robust { get; set; } = true;
        public SortedSet<int> Attacks { get; } = [];
    }

    /// <summary>The ranges of [0, total) that the sorted indices leave out, END excluded.</summary>
    private static List<string> Gaps(IReadOnlyList<int> sorted, int total)
    {
        var gaps = new List<string>();
        var next = 0;
        foreach (var i in sorted)
        {
            if (i > next) gaps.Add(new IndexRange(next, i).ToString());
            next = i + 1;
        }
        if (next < total) gaps.Add(new IndexRange(next, total).ToString());
        return gaps;
    }

    /// <summary>Sorted indices as START:END ranges, END excluded.</summary>
    private static List<string> Ranges(IReadOnlyList<int> sorted)
    {
        var ranges = new List<string>();
        for (var k = 0; k < sorted.Count;)
        {
            var start = sorted[k];
            var end = start + 1;
            while (++k < sorted.Count && sorted[k] == end) end++;
            ranges.Add(new IndexRange(start, end).ToString());
        }
        return ranges;
    }

    private static string Describe(ThreatModel model) => $"{model.Norm} eps {model.Epsilon}";

    private static string Short(string sha256) => sha256.Length > 12 ? sha256[..12] : sha256;
}
