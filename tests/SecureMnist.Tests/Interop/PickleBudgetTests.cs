using System.IO.Compression;
using SecureMnist.Interop;

namespace SecureMnist.Tests.Interop;

/// <summary>
/// The unpickler's work is proportional to its input: hostile pickles that cost a naive reader exponential time or
/// unbounded memory are refused by a named limit, and the work counters show how little was done before that.
/// </summary>
public sealed class PickleBudgetTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    public static TheoryData<string, string> Hostile() => new()
    {
        { "shared-references-64", "nested deeper than 32 levels (limit MaxDepth)" },
        { "list-of-a-million", "more than 100000 container items (limit MaxItems)" },
        { "appends-of-a-million", "stack deeper than 10000 (limit MaxStack)" },
        { "string-of-100-mb", "over the 1048576 byte limit" },
        { "tuples-10000-deep", "nested deeper than 32 levels (limit MaxDepth)" },
        { "lists-10000-deep", "nested deeper than 32 levels (limit MaxDepth)" },
        { "marks-10000-deep", "open MARKs (limit MaxStack)" },
        { "list-in-itself", "changed after it was put inside another container" },
        { "list-grows-after-sharing", "changed after it was put inside another container" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void Hostile_pickles_are_refused_by_a_named_limit_after_work_linear_in_their_size(string name, string limit)
    {
        var pickle = HostilePickles.Build(name);
        var unpickler = new RestrictedUnpickler(PyTorchArchive.AllowedGlobals.ToDictionary(g => g, _ => (AllowedCallable?)null),
            (_, _) => throw new InvalidOperationException(), scanOnly: true);

        var error = WithinHangGuard(() => Assert.Throws<UnsafePickleException>(() => unpickler.Load(pickle)));

        Assert.Contains(limit, error.Message);
        Assert.True(unpickler.LastWork.Opcodes <= pickle.Length, $"{unpickler.LastWork.Opcodes} opcodes for {pickle.Length} bytes");
        Assert.True(unpickler.LastWork.Objects <= pickle.Length);
    }

    [Fact]
    public void Shared_references_cost_one_step_each_below_the_depth_limit()
    {
        // 30 levels of four references each: 4^30 paths through the tree, seven opcodes a level in the stream.
        var pickle = HostilePickles.SharedReferences(levels: 30);
        var unpickler = new RestrictedUnpickler(new Dictionary<string, AllowedCallable?>(), (_, _) => throw new InvalidOperationException());

        var root = WithinHangGuard(() => unpickler.Load(pickle));

        Assert.IsType<PyTuple>(root);
        Assert.True(unpickler.LastWork.Opcodes <= (7 * 30) + 10, $"{unpickler.LastWork.Opcodes} opcodes");
    }

    [Theory]
    [InlineData("shared-references-64")]
    [InlineData("list-of-a-million")]
    [InlineData("tuples-10000-deep")]
    public void Scan_refuses_the_hostile_pickle_bare_and_inside_a_torch_save_zip(string name)
    {
        var pickle = HostilePickles.Build(name);
        var bare = Path.Combine(directory, name + ".pkl");
        File.WriteAllBytes(bare, pickle);
        var zipped = Path.Combine(directory, name + ".pth");
        using (var zip = ZipFile.Open(zipped, ZipArchiveMode.Create))
        using (var entry = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open())
        {
            entry.Write(pickle);
        }

        foreach (var file in new[] { bare, zipped })
        {
            var scan = WithinHangGuard(() => ModelFileScanner.Scan(file));
            Assert.False(scan.SafeToLoad);
            Assert.Contains(scan.Problems, p => p.Contains("limit", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_time_budget_stops_a_parse_and_names_itself()
    {
        var unpickler = new RestrictedUnpickler(new Dictionary<string, AllowedCallable?>(), (_, _) => throw new InvalidOperationException(),
            new PickleLimits(MaxSeconds: 1e-9));
        var pickle = new PickleWriter();
        for (var i = 0; i < 5000; i++) pickle.Raw("N");

        var error = Assert.Throws<UnsafePickleException>(() => unpickler.Load(pickle.Stop().ToArray()));

        Assert.Contains("time budget (limit MaxSeconds)", error.Message);
    }

    [Fact]
    public void Limits_that_make_no_sense_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PickleLimits(MaxDepth: 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PickleLimits(MaxSeconds: double.NaN).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new PickleLimits(MaxOpcodes: -1).Validate());
    }

    /// <summary>Runs a parse on its own thread and fails the test instead of hanging the suite when it does not end.</summary>
    private static T WithinHangGuard<T>(Func<T> parse)
    {
        var work = Task.Run(parse);
        Assert.True(work.Wait(TimeSpan.FromSeconds(60)), "the parse did not finish within 60 s (a hang)");
        return work.Result;
    }
}
