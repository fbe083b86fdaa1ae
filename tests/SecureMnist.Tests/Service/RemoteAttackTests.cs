using SecureMnist.Attacks.Evasion;
using SecureMnist.Attacks.Extraction;

namespace SecureMnist.Tests.Service;

/// <summary>The black-box attacks against the real service over loopback, within a query budget (<c>attack --target</c>).</summary>
[Collection(ServedModelCollection.Name)]
public sealed class RemoteAttackTests(ServedModel model)
{
    [Fact]
    public async Task Square_attacks_the_running_service_within_its_query_budget_a_label_only_key_only_by_hopskipjump()
    {
        // A key file of its own: the monitor's verdict on a key is kept beside the key file, and the other tests share the fixture's.
        var keys = Path.Combine(model.Directory, "remote-attack-" + Guid.NewGuid().ToString("N") + ".json");
        File.Copy(model.ApiKeysPath, keys);
        await using var service = await RunningService.Start(model.Options() with { ApiKeysPath = keys });
        const int Images = 20;
        const long Budget = Images * 43L; // 40 queries per input for the attack, 3 for the evaluator's own questions
        var perInput = RemoteClassifier.QueriesPerInput(Budget, Images);
        Assert.Equal(40, perInput);
        var test = model.Mnist.Test.Take(Images);
        var classifier = new RemoteClassifier(new HttpVictim(service.Client, model.Secrets["user"], scores: true));
        var attack = new Square(new SquareOptions(0.3, Queries: (int)perInput, Seed: 1));
        var run = AttackEvaluator.Run(classifier, test, [attack], batchSize: Images);

        Assert.InRange(classifier.Queries, 3L * Images + 1, Budget); // the attack asked, and never past the budget
        Assert.True(run.Report.CleanAccuracy >= 0.8, $"clean accuracy over HTTP {run.Report.CleanAccuracy:P0}");
        // Square's stream of near-duplicate queries is what the extraction monitor looks for: it cuts the key down to labels, and the answers
        // without scores are refusals, never counted as the attack's success.
        Assert.True(classifier.Refused > 0, $"nothing refused; robust {run.Report.RobustAccuracy:P0} of clean {run.Report.CleanAccuracy:P0}");
        Assert.InRange(run.Report.RobustAccuracy, 0, run.Report.CleanAccuracy);
        // The service saw the attack: every query is in its audit log, and the monitor's verdict on the key is there too.
        var records = service.AuditRecords();
        Assert.Equal(classifier.Queries, records.Count);
        Assert.Contains(records, r => r.KeyId == "user" && r.Reason is { } reason && reason.Contains("extraction", StringComparison.OrdinalIgnoreCase));

        var labelOnly = new RemoteClassifier(new HttpVictim(service.Client, model.Secrets["label-only"], scores: false));
        var error = Assert.Throws<InvalidOperationException>(() => AttackEvaluator.Run(labelOnly, test, [attack], batchSize: Images));
        Assert.Contains("label-only", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => RemoteClassifier.QueriesPerInput(4L * Images - 1, Images));

        // HopSkipJump needs decisions only, so the label-only key can be attacked. This service abstains on noise, so HopSkipJump's noise
        // starts are refused (never successes) and it starts from another input of another class instead.
        const int Few = 5;
        var decisions = new RemoteClassifier(new HttpVictim(service.Client, model.Secrets["label-only"], scores: false), decisionsOnly: true);
        var hopSkipJump = new HopSkipJump(new HopSkipJumpOptions(Queries: 150, Seed: 1));
        var decided = AttackEvaluator.Run(decisions, test.Take(Few), [hopSkipJump], batchSize: Few);
        Assert.InRange(decisions.Queries, 3L * Few + 1, Few * (150L + 3));
        Assert.True(decided.Report.CleanAccuracy >= 0.6, $"clean accuracy from labels {decided.Report.CleanAccuracy:P0}");
        Assert.True(decisions.Refused > 0, "the service never abstained");
        Assert.True(decided.Report.Perturbation.Count > 0, $"nothing found from labels alone; robust {decided.Report.RobustAccuracy:P0}");
        Assert.InRange(decided.Report.RobustAccuracy, 0, decided.Report.CleanAccuracy);

        // The same attack through the same classifier on labels from an undefended copy of the network: decisions alone find adversarial
        // examples, with the L2 they needed.
        using var verified = SecureMnist.Security.ModelPackage.Load(model.PackageDirectory, SecureMnist.Security.TrustedPublicKey.FromFile(model.PublicKeyPath));
        var local = new RemoteClassifier(new PackageVictim(verified.Network, scores: false), decisionsOnly: true);
        var found = AttackEvaluator.Run(local, test.Take(Few), [hopSkipJump], batchSize: Few);
        Assert.True(found.Report.Perturbation is { Count: > 0, MedianL2: > 0 and < 28 }, $"perturbation {found.Report.Perturbation}");
        Assert.True(found.Report.RobustAccuracy < found.Report.CleanAccuracy, $"robust {found.Report.RobustAccuracy:P0} of clean {found.Report.CleanAccuracy:P0}");
    }
}
