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
}
