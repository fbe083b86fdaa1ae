namespace SecureMnist.Attacks.Evasion;

/// <summary>Settings shared by the attacks a user names on the command line.</summary>
public sealed record AttackSettings
{
    public double Epsilon { get; init; } = 0.3;
    public double StepSize { get; init; } = 0.01;
    public int Steps { get; init; } = 40;
    public int Restarts { get; init; } = 1;
    public double EpsilonL2 { get; init; } = 2.0;
    public double StepSizeL2 { get; init; } = 0.1;
    public int ApgdSteps { get; init; } = 100;

    /// <summary>Target classes APGD-T tries (AutoAttack's standard: 9).</summary>
    public int ApgdTargets { get; init; } = 9;

    /// <summary>Target classes FAB-T tries (AutoAttack's standard: 9).</summary>
    public int FabTargets { get; init; } = 9;

    /// <summary>FAB-T iterations per target (AutoAttack's standard: 100).</summary>
    public int FabSteps { get; init; } = 100;

    /// <summary>Square's queries per input (AutoAttack's standard: 5,000).</summary>
    public int SquareQueries { get; init; } = 5000;

    /// <summary>HopSkipJump's label queries per input.</summary>
    public int HopSkipJumpQueries { get; init; } = 1000;
    public CarliniWagnerOptions CarliniWagner { get; init; } = new();
    public int Seed { get; init; }
}

/// <summary>Attacks by name: fgsm, pgd, pgd-l2, apgd-ce, apgd-dlr, apgd-t, fab-t, square, cw, hopskipjump; and autoattack, the standard set.</summary>
public static class AttackCatalog
{
    /// <summary>The name that stands for AutoAttack's standard set, in its order.</summary>
    public const string AutoAttack = "autoattack";

    /// <summary>AutoAttack's standard set (Croce &amp; Hein, 2020), in the order it runs them.</summary>
    public static IReadOnlyList<string> AutoAttackStandard { get; } = ["apgd-ce", "apgd-t", "fab-t", "square"];

    public static IReadOnlyDictionary<string, string> Descriptions { get; } = new Dictionary<string, string>
    {
        ["fgsm"] = "fast gradient sign method, one step of size eps (L-inf)",
        ["pgd"] = "projected gradient descent, L-inf, random start, --alpha, --steps, --restarts",
        ["pgd-l2"] = "projected gradient descent, L2 ball of radius --eps-l2, step --alpha-l2",
        ["apgd-ce"] = "Auto-PGD with cross-entropy (AutoAttack), L-inf, step size chosen automatically",
        ["apgd-dlr"] = "Auto-PGD with the difference-of-logits-ratio loss, robust to logit scaling",
        ["apgd-t"] = "targeted Auto-PGD on the DLR loss, once per target class (the --apgd-t-targets classes ranked next on the clean input)",
        ["fab-t"] = "targeted Fast Adaptive Boundary, minimum L-inf norm, counted within eps (--fab-t-targets, --fab-steps)",
        ["square"] = "Square attack: score-based black box, no gradients, --square-queries per input; exposes gradient masking",
        ["cw"] = "Carlini-Wagner L2, minimum-norm (unbounded: reports the L2 it needed)",
        ["hopskipjump"] = "HopSkipJump: decision-based black box (labels only), minimum L2 within --hsj-queries per input (unbounded: reports the L2 it needed)",
        [AutoAttack] = "AutoAttack's standard set at --eps: apgd-ce, apgd-t, fab-t, square, each on the inputs still robust",
    };

    public static IEvasionAttack Create(string name, AttackSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return name switch
        {
            "fgsm" => new Fgsm(new FgsmOptions(settings.Epsilon)),
            "pgd" => new Pgd(new PgdOptions(settings.Epsilon, settings.StepSize, settings.Steps, settings.Restarts, Seed: settings.Seed)),
            "pgd-l2" => new Pgd(new PgdOptions(settings.EpsilonL2, settings.StepSizeL2, settings.Steps, settings.Restarts, Norm: PerturbationNorm.L2, Seed: settings.Seed)),
            "apgd-ce" => new Apgd(new ApgdOptions(settings.Epsilon, settings.ApgdSteps, settings.Restarts, ApgdLoss.CrossEntropy, Seed: settings.Seed)),
            "apgd-dlr" => new Apgd(new ApgdOptions(settings.Epsilon, settings.ApgdSteps, settings.Restarts, ApgdLoss.Dlr, Seed: settings.Seed)),
            "apgd-t" => new Apgd(new ApgdOptions(settings.Epsilon, settings.ApgdSteps, 1, ApgdLoss.TargetedDlr, Seed: settings.Seed, TargetClasses: settings.ApgdTargets)),
            "fab-t" => new FabTargeted(new FabOptions(settings.Epsilon, settings.FabSteps, settings.FabTargets, Seed: settings.Seed)),
            "square" => new Square(new SquareOptions(settings.Epsilon, settings.SquareQueries, Seed: settings.Seed)),
            AutoAttack => throw new ArgumentException($"'{AutoAttack}' is a set of attacks ({string.Join(", ", AutoAttackStandard)}); name it in an attack list"),
            "cw" => new CarliniWagnerL2(settings.CarliniWagner),
            "hopskipjump" => new HopSkipJump(new HopSkipJumpOptions(settings.HopSkipJumpQueries, Seed: settings.Seed)),
            _ => throw new ArgumentException($"unknown attack '{name}'; known: {string.Join(", ", Descriptions.Keys)}"),
        };
    }

    /// <summary>
    /// Parses a comma-separated list such as "fgsm,pgd,apgd-dlr" or "autoattack" (which expands to its four attacks). The attacks must
    /// share one threat model: a robust accuracy over L-inf and L2 attacks together answers no question.
    /// </summary>
    public static IReadOnlyList<IEvasionAttack> Parse(string list, AttackSettings settings)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(list);
        var names = Expand(list);
        if (names.Count == 0) throw new ArgumentException("no attack named");
        var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"attack '{duplicate.Key}' is listed twice{(list.Contains(AutoAttack, StringComparison.Ordinal) ? $" ({AutoAttack} includes it)" : "")}");
        var attacks = names.Select(n => Create(n, settings)).ToList();
        RequireOneThreatModel(attacks);
        return attacks;
    }

    /// <summary>The attack names of a list, with autoattack replaced by its members.</summary>
    public static IReadOnlyList<string> Expand(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        return list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .SelectMany(n => n == AutoAttack ? AutoAttackStandard : [n]).ToList();
    }

    /// <summary>Refuses attacks of different norms, or of different budgets in one norm, in one robustness run.</summary>
    public static void RequireOneThreatModel(IReadOnlyList<IEvasionAttack> attacks)
    {
        ArgumentNullException.ThrowIfNull(attacks);
        var models = attacks.GroupBy(a => (a.Norm, a.Epsilon)).ToList();
        if (models.Count > 1)
            throw new ArgumentException("the attacks mix threat models (" +
                string.Join("; ", models.Select(g => $"{NormName(g.Key.Norm)} eps {(double.IsPositiveInfinity(g.Key.Epsilon) ? "unbounded" : g.Key.Epsilon)}: {string.Join(", ", g.Select(a => ShortName(a.Name)))}")) +
                "); one robust accuracy over several means nothing, so run each threat model on its own");
    }

    public static string NormName(PerturbationNorm norm) => norm == PerturbationNorm.LInf ? "L-inf" : "L2";

    private static string ShortName(string name) => name.IndexOf('(', StringComparison.Ordinal) is var open and >= 0 ? name[..open] : name;
}
