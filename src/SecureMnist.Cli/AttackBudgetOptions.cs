using System.CommandLine;
using SecureMnist.Attacks.Evasion;

namespace SecureMnist.Cli;

/// <summary>The budget knobs of AutoAttack's members, shared by the verbs that run them; the defaults are AutoAttack's standard.</summary>
internal sealed class AttackBudgetOptions
{
    private static readonly AttackSettings Defaults = new();

    public Option<int> ApgdTargets { get; } = new("--apgd-t-targets")
    {
        Description = "Target classes APGD-T tries, the classes ranked next on the clean input (1-9; standard: 9)", DefaultValueFactory = _ => Defaults.ApgdTargets,
    };

    public Option<int> FabTargets { get; } = new("--fab-t-targets")
    {
        Description = "Target classes FAB-T tries (1-9; standard: 9)", DefaultValueFactory = _ => Defaults.FabTargets,
    };

    public Option<int> FabSteps { get; } = new("--fab-steps") { Description = "FAB-T iterations per target (standard: 100)", DefaultValueFactory = _ => Defaults.FabSteps };

    public Option<int> SquareQueries { get; } = new("--square-queries")
    {
        Description = $"Square's queries per input (standard: 5,000; at most {SquareOptions.MaxQueries:N0})", DefaultValueFactory = _ => Defaults.SquareQueries,
    };

    public Option<int> HopSkipJumpQueries { get; } = new("--hsj-queries")
    {
        Description = $"HopSkipJump's label queries per input (default 1,000; at most {HopSkipJumpOptions.MaxQueries:N0})", DefaultValueFactory = _ => Defaults.HopSkipJumpQueries,
    };

    public IEnumerable<Option> All => [ApgdTargets, FabTargets, FabSteps, SquareQueries, HopSkipJumpQueries];

    public AttackSettings Apply(AttackSettings settings, ParseResult result) => settings with
    {
        ApgdTargets = result.GetValue(ApgdTargets), FabTargets = result.GetValue(FabTargets), FabSteps = result.GetValue(FabSteps), SquareQueries = result.GetValue(SquareQueries),
        HopSkipJumpQueries = result.GetValue(HopSkipJumpQueries),
    };
}
