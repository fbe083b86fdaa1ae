using SecureMnist.Evaluation;
using SecureMnist.Training;

namespace SecureMnist.Tests.Evaluation;

public sealed class SeedIntervalTests
{
    [Fact]
    public void Three_seeds_give_the_student_t_interval_of_the_mean()
    {
        // mean 0.92, s = 0.02, half-width t(0.975, 2) * s / sqrt(3) = 4.303 * 0.02 / 1.7321 = 0.04969
        var spread = SeedInterval.Of([0.90, 0.92, 0.94]);
        Assert.Equal(3, spread.Runs);
        Assert.Equal(0.92, spread.Mean, 12);
        Assert.Equal(0.02, spread.StandardDeviation, 12);
        Assert.Equal(0.87031, spread.Interval95.Low, 5);
        Assert.Equal(0.96969, spread.Interval95.High, 5);
    }

    [Theory]
    [InlineData(1, 12.706)]
    [InlineData(2, 4.303)]
    [InlineData(10, 2.228)]
    [InlineData(30, 2.042)]
    [InlineData(40, 2.021)]   // tables: 2.021
    [InlineData(120, 1.980)]  // tables: 1.980
    public void Student_t_quantiles_match_the_tables(int degreesOfFreedom, double expected)
    {
        Assert.Equal(expected, SeedInterval.StudentT975(degreesOfFreedom), 3);
    }

    [Fact]
    public void The_interval_stays_inside_zero_and_one_and_bad_input_is_refused()
    {
        var spread = SeedInterval.Of([0.99, 1.0, 1.0]);
        Assert.Equal(1.0, spread.Interval95.High);
        Assert.True(spread.Interval95.Low < 0.99);
        Assert.Throws<ArgumentException>(() => SeedInterval.Of([0.9]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SeedInterval.Of([0.9, double.NaN]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SeedInterval.Of([0.9, 1.5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SeedInterval.StudentT975(0));
    }

    [Fact]
    public void Compared_models_of_one_recipe_with_different_seeds_form_a_group()
    {
        var recipe = new TrainingOptions { Defense = "trades", Epochs = 16 };
        static ComparedModel Model(string name, TrainingOptions options, double clean, double robust) =>
            new(name, "wide-cnn", options.Defense, clean, robust, [], null, [], options);
        var groups = ModelComparison.SeedGroups(
        [
            Model("a", recipe with { Seed = 1 }, 0.99, 0.90),
            Model("b", recipe with { Seed = 2 }, 0.99, 0.92),
            Model("c", recipe with { Seed = 3 }, 0.99, 0.94),
            Model("other-recipe", recipe with { Seed = 4, Epochs = 8 }, 0.98, 0.80),
            Model("no-record", recipe, 0.5, 0.5) with { Options = null },
        ]);
        var group = Assert.Single(groups);
        Assert.Equal(["a", "b", "c"], group.Models);
        Assert.Equal([1, 2, 3], group.Seeds);
        Assert.Equal(0.92, group.Robust.Mean, 12);
        Assert.Equal(0.87031, group.Robust.Interval95.Low, 5);
    }
}
