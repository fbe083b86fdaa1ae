using SecureMnist.Reporting;

namespace SecureMnist.Tests.Reporting;

public sealed class LineChartTests
{
    [Theory]
    [InlineData(0.0, 94.4, new[] { 0.0, 20, 40, 60, 80, 100 })]   // robust accuracy of several models
    [InlineData(98.2, 99.2, new[] { 98.2, 98.4, 98.6, 98.8, 99.0, 99.2 })]   // their clean accuracy
    [InlineData(1.0, 12.0, new[] { 0.0, 2, 4, 6, 8, 10, 12 })]   // epochs
    [InlineData(0.0, 0.4, new[] { 0.0, 0.1, 0.2, 0.3, 0.4 })]   // eps
    [InlineData(-3.0, 7.0, new[] { -4.0, -2, 0, 2, 4, 6, 8 })]
    [InlineData(5.0, 5.0, new[] { 4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6 })]   // one value: an axis around it
    public void Axes_tick_at_round_numbers_that_enclose_the_data(double min, double max, double[] expected)
    {
        Assert.Equal(expected, LineChart.Ticks(min, max));
    }

    [Fact]
    public void An_axis_needs_finite_ordered_ends()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LineChart.Ticks(2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LineChart.Ticks(double.NaN, 1));
    }
}
