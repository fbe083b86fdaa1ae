using SecureMnist.Attacks.Extraction;
using static TorchSharp.torch;

namespace SecureMnist.Attacks.Evasion;

/// <summary>
/// A model behind a running service (<c>attack --target URL</c>) as an attack target: every image asked for is one query against the
/// key, counted in <see cref="Queries"/>. The answers' probabilities become logits as their logarithms, which keeps every difference
/// between classes (what Square's margin and HopSkipJump's decision read). It gives no gradients, so only black-box attacks run on it.
/// An answer without scores is a refusal: a NaN row (<see cref="RefusedAnswers"/>), no progress for the attack and no success. That is
/// what a service gives when it withholds a decision, or when its extraction monitor has cut the key down to labels mid-attack. A key
/// that is label-only from its first answer is refused: it never gives the scores Square reads.
/// With <paramref name="decisionsOnly"/> (every attack is decision-based, as HopSkipJump is) a label is all an answer needs: it becomes
/// a one-hot row (log-probability 0 for the label, log 1e-30 for the rest), so label-only keys can be attacked, and only an answer
/// without a label (the service abstained) is a refusal.
/// </summary>
public sealed class RemoteClassifier(IVictim victim, CancellationToken cancellationToken = default, bool decisionsOnly = false) : IClassifier
{
    /// <summary>The attacks that need only the model's decision (its label), not its scores.</summary>
    public static IReadOnlyCollection<string> DecisionAttacks { get; } = ["hopskipjump"];

    /// <summary>The attacks that need only the model's answers.</summary>
    public static IReadOnlyCollection<string> BlackBoxAttacks { get; } = ["square", "hopskipjump"];

    public int ClassCount => 10;

    /// <summary>
    /// Each input's share of a total budget for the attack itself: the evaluator asks every input once clean, once after the attack and
    /// once more when it recomputes the report, so three queries per input go there. Throws when the budget leaves the attack nothing.
    /// </summary>
    public static long QueriesPerInput(long budget, int images)
    {
        if (images < 1) throw new ArgumentOutOfRangeException(nameof(images), images, "at least one input");
        if (budget < 4L * images)
            throw new ArgumentOutOfRangeException(nameof(budget), budget, $"a budget of {budget:N0} queries leaves no queries for the attack on {images:N0} inputs: it needs at least {4L * images:N0} (4 per input)");
        return budget / images - 3;
    }

    /// <summary>Images sent to the service so far.</summary>
    public long Queries { get; private set; }

    /// <summary>Answers refused: without scores after the key had been given scores (withheld, or the key cut down to labels), or, when
    /// decisions suffice, without a label (abstained).</summary>
    public long Refused { get; private set; }

    private bool sawScores;

    public Tensor Logits(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.requires_grad) throw new InvalidOperationException("a remote model answers scores, not gradients: use the black-box attacks (square, hopskipjump)");
        var count = (int)images.shape[0];
        using var flat = images.detach().to(ScalarType.Float32).cpu().reshape(count, 784).contiguous();
        var pixels = flat.data<float>().ToArray();
        var batch = Enumerable.Range(0, count).Select(i => pixels.AsSpan(i * 784, 784).ToArray()).ToList();
        var answers = victim.QueryAsync(batch, cancellationToken).GetAwaiter().GetResult();
        Queries += count;
        var logits = new float[count * 10];
        for (var i = 0; i < count; i++)
        {
            if (decisionsOnly)
            {
                if (answers[i].Label is { } label and >= 0 and < 10)
                {
                    Array.Fill(logits, MathF.Log(1e-30f), i * 10, 10);
                    logits[i * 10 + label] = 0;
                }
                else
                {
                    Refused++;
                    Array.Fill(logits, float.NaN, i * 10, 10);
                }
                continue;
            }
            if (answers[i].Probabilities is not { } probabilities)
            {
                if (!sawScores && answers[i].Label is not null)
                    throw new InvalidOperationException("the service answered a label without probabilities: this key is label-only, and a remote attack needs scores access");
                Refused++;
                Array.Fill(logits, float.NaN, i * 10, 10);
                continue;
            }
            sawScores = true;
            for (var c = 0; c < 10; c++) logits[i * 10 + c] = MathF.Log(Math.Max(probabilities[c], 1e-30f));
        }
        return tensor(logits, [count, 10]);
    }
}
