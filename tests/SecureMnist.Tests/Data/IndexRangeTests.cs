using SecureMnist.Data;

namespace SecureMnist.Tests.Data;

public sealed class IndexRangeTests
{
    [Theory]
    [InlineData("0:5000", 0, 5000)]
    [InlineData("5000:10000", 5000, 10000)]
    [InlineData(" 12 : 13 ", 12, 13)]
    public void A_range_parses_start_and_end(string text, int start, int end)
    {
        var range = IndexRange.Parse(text);
        Assert.Equal((start, end), range.Within(10_000));
        Assert.Equal($"{start}:{end}", range.ToString());
    }

    [Fact]
    public void An_open_range_runs_to_the_end_of_the_set()
    {
        var range = IndexRange.Parse("5000:");
        Assert.Null(range.End);
        Assert.Equal((5000, 10_000), range.Within(10_000));
        Assert.Equal((5000, 6000), range.Within(6000));
    }

    [Theory]
    [InlineData("5000", "takes START:END")]
    [InlineData("1:2:3", "takes START:END")]
    [InlineData(":100", "START in ':100' is not a whole number")]
    [InlineData("-1:100", "START in '-1:100' is not a whole number")]
    [InlineData("0:x", "END in '0:x' is not a whole number")]
    [InlineData("0:1e3", "END in '0:1e3' is not a whole number")]
    [InlineData("100:100", "END must be greater than START")]
    [InlineData("200:100", "END must be greater than START")]
    [InlineData("0:99999999999", "END in '0:99999999999' is not a whole number")]
    public void Bad_ranges_are_refused_with_the_flag_named(string text, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => IndexRange.Parse(text));
        Assert.StartsWith("--range", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0:10001")]
    [InlineData("10000:")]
    [InlineData("9999:10001")]
    public void A_range_past_the_set_is_refused(string text)
    {
        var error = Assert.Throws<ArgumentException>(() => IndexRange.Parse(text).Within(10_000));
        Assert.Contains("reaches past the 10000 images", error.Message, StringComparison.Ordinal);
    }
}
