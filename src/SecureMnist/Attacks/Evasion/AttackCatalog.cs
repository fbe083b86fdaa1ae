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
    public CarliniWagnerOptions CarliniWagner { get; init; } = new();
    public int Seed { get; init; }
}

/// <summary>Attacks by name: fgsm, pgd, pgd-l2, apgd-ce, apgd-dlr, cw.</summary>
public static class AttackCatalog
{
    public static IReadOnlyDictionary<string, string> Descriptions { get; } = new Dictionary<string, string>
    {
        ["fgsm"] = "fast gradient sign method, one step of size eps (L-inf)",
        ["pgd"] = "projected gradient descent, L-inf, random start, --alpha, --steps, --restarts",
        ["pgd-l2"] = "projected gradient descent, L2 ball of radius --eps-l2, step --alpha-l2",
        ["apgd-ce"] = "Auto-PGD with cross-entropy (AutoAttack), L-inf, step size chosen automatically",
        ["apgd-dlr"] = "Auto-PGD with the difference-of-logits-ratio loss, robust to logit scaling",
        ["cw"] = "Carlini-Wagner L2, minimum-norm (unbounded: reports the L2 it needed)",
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
            "cw" => new CarliniWagnerL2(settings.CarliniWagner),
            _ => throw new ArgumentException($"unknown attack '{name}'; known: {string.Join(", ", Descriptions.Keys)}"),
        };
    }

    /// <summary>Parses a comma-separated list such as "fgsm,pgd,apgd-dlr".</summary>
    public static IReadOnlyList<IEvasionAttack> Parse(string list, AttackSettings settings)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(list);
        var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 0) throw new ArgumentException("no attack named");
        var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"attack '{duplicate.Key}' is listed twice");
        return names.Select(n => Create(n, settings)).ToList();
    }
}
