using SecureMnist.Interop;

namespace SecureMnist.Tests.Interop;

/// <summary>scan's severities, after ModelScan's lists: code execution is critical, network access high, any other refused global medium.</summary>
public sealed class ScanSeverityTests
{
    [Theory]
    [InlineData("os", "system", ScanSeverity.Critical)]
    [InlineData("posix", "system", ScanSeverity.Critical)]
    [InlineData("os.path", "join", ScanSeverity.Critical)]
    [InlineData("subprocess", "Popen", ScanSeverity.Critical)]
    [InlineData("builtins", "eval", ScanSeverity.Critical)]
    [InlineData("__builtin__", "exec", ScanSeverity.Critical)]
    [InlineData("operator", "attrgetter", ScanSeverity.Critical)]
    [InlineData("runpy", "run_path", ScanSeverity.Critical)]
    [InlineData("webbrowser", "open", ScanSeverity.High)]
    [InlineData("http.client", "HTTPSConnection", ScanSeverity.High)]
    [InlineData("requests.api", "get", ScanSeverity.High)]
    [InlineData("builtins", "len", ScanSeverity.Medium)]
    [InlineData("operator", "add", ScanSeverity.Medium)]
    [InlineData("osx", "thing", ScanSeverity.Medium)]
    [InlineData("collections", "Counter", ScanSeverity.Medium)]
    public void A_global_gets_modelscans_severity(string module, string name, ScanSeverity expected) =>
        Assert.Equal(expected, ScanSeverities.OfGlobal(module, name));

    [Fact]
    public void Severity_names_parse_in_any_case_and_others_are_refused_by_name()
    {
        Assert.Equal(ScanSeverity.High, ScanSeverities.Parse(" HIGH "));
        Assert.Contains("use low, medium, high or critical", Assert.Throws<ArgumentException>(() => ScanSeverities.Parse("severe")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_worst_finding_decides_and_a_format_only_refusal_is_low()
    {
        var directory = TestPaths.NewScratchDirectory();
        var mixed = Path.Combine(directory, "mixed.pkl");
        File.WriteAllBytes(mixed, new PickleWriter().Global("collections", "Counter").Raw(")").Raw("R").Global("os", "system").Unicode("id").Raw("\x85").Raw("R").Raw("\x86").Stop().ToArray());
        var scan = ModelFileScanner.Scan(mixed);
        Assert.Equal(ScanSeverity.Critical, scan.Severity);
        Assert.Equal([ScanSeverity.Medium, ScanSeverity.Critical], scan.Findings.Select(f => f.Severity));
        Assert.True(scan.FailsAt(ScanSeverity.Critical));

        // A bare pickle of plain data references no global: refused for its format alone.
        var plain = Path.Combine(directory, "plain.pkl");
        File.WriteAllBytes(plain, new PickleWriter().Unicode("just text").Stop().ToArray());
        var format = ModelFileScanner.Scan(plain);
        Assert.False(format.SafeToLoad);
        Assert.Equal(ScanSeverity.Low, format.Severity);
        Assert.True(format.FailsAt(ScanSeverity.Low));
        Assert.False(format.FailsAt(ScanSeverity.Medium));
    }

    [Fact]
    public void A_scan_cut_short_by_a_budget_is_high_whatever_it_saw_before_stopping()
    {
        // A medium global, then more stack than the scan allows, then os.system: the budget stops the scan before it reaches
        // os.system, so what was seen (medium) must not decide. Bare and inside a torch.save zip.
        var writer = new PickleWriter().Global("collections", "Counter").Raw(")").Raw("R");
        for (var i = 0; i <= new PickleLimits().MaxStack; i++) writer.Raw("N");
        var pickle = writer.Global("os", "system").Unicode("id").Raw("\x85").Raw("R").Stop().ToArray();
        var directory = TestPaths.NewScratchDirectory();
        var bare = Path.Combine(directory, "stack.pkl");
        File.WriteAllBytes(bare, pickle);
        var zipped = Path.Combine(directory, "stack.pth");
        using (var zip = System.IO.Compression.ZipFile.Open(zipped, System.IO.Compression.ZipArchiveMode.Create))
        using (var entry = zip.CreateEntry("archive/data.pkl").Open())
        {
            entry.Write(pickle);
        }

        foreach (var file in new[] { bare, zipped })
        {
            var scan = ModelFileScanner.Scan(file);
            Assert.DoesNotContain(scan.Globals, g => g.Module == "os");
            Assert.Contains(scan.Findings, f => f.Severity == ScanSeverity.Medium && f.Global?.Name == "Counter");
            Assert.Contains(scan.Findings, f => f.Severity == ScanSeverity.High && f.Message.Contains("MaxStack", StringComparison.Ordinal));
            Assert.True(scan.FailsAt(ScanSeverity.High), file);
        }
    }

    [Fact]
    public void A_refusal_that_is_not_a_global_keeps_its_own_high_finding_beside_the_globals()
    {
        // REDUCE on a tuple is refused in its own right, whatever globals the pickle also references.
        var pickle = new PickleWriter().Global("collections", "Counter").Raw(")").Raw("R").Raw(")").Raw(")").Raw("R").Raw("\x86").Stop().ToArray();
        var file = Path.Combine(TestPaths.NewScratchDirectory(), "reduce.pkl");
        File.WriteAllBytes(file, pickle);
        var scan = ModelFileScanner.Scan(file);
        Assert.Contains(scan.Findings, f => f.Severity == ScanSeverity.Medium && f.Global is not null);
        Assert.Contains(scan.Findings, f => f.Severity == ScanSeverity.High && f.Message.Contains("REDUCE", StringComparison.Ordinal));
        Assert.True(scan.FailsAt(ScanSeverity.High));
    }

    [Fact]
    public void The_fail_on_values_are_the_severities()
    {
        Assert.Equal(["low", "medium", "high", "critical"], ScanSeverities.Names);
        foreach (var name in ScanSeverities.Names) Assert.Equal(name, ScanSeverities.Name(ScanSeverities.Parse(name)));
    }
}
