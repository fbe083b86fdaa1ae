using SecureMnist.Data;

namespace SecureMnist.Privacy;

/// <summary>
/// The images a membership attack is scored on: as many members (images the model trained on) as non-members (images from the
/// same distribution it never saw), each side drawn at random. Balanced, because an attack that calls everything a member scores
/// 90% "accuracy" on 9 members to 1 non-member and learns nothing; random, because the first N images are not a fair sample.
/// </summary>
public sealed record MembershipSets(LabeledImages Members, LabeledImages NonMembers, int[] MemberIndices, int[] NonMemberIndices)
{
    /// <summary>
    /// Draws <paramref name="perSide"/> images from each pool without replacement (seeded). Fails when a pool is smaller than
    /// <paramref name="perSide"/>, rather than returning an unbalanced set.
    /// </summary>
    public static MembershipSets Draw(LabeledImages memberPool, LabeledImages nonMemberPool, int perSide, int seed)
    {
        ArgumentNullException.ThrowIfNull(memberPool);
        ArgumentNullException.ThrowIfNull(nonMemberPool);
        ArgumentOutOfRangeException.ThrowIfLessThan(perSide, 1);
        if (perSide > memberPool.Count || perSide > nonMemberPool.Count)
            throw new ArgumentException($"a balanced set of {perSide} members and {perSide} non-members needs that many of each; the pools hold {memberPool.Count} members and {nonMemberPool.Count} non-members");
        var random = new SeededRandom(seed);
        var members = Pick(memberPool.Count, perSide, random);
        var nonMembers = Pick(nonMemberPool.Count, perSide, random);
        return new MembershipSets(memberPool.Select(members), nonMemberPool.Select(nonMembers), members, nonMembers);
    }

    public int PerSide => Members.Count;

    /// <summary>Members then non-members, in one set: the order every score array follows.</summary>
    public LabeledImages All() => LabeledImages.Concat(Members, NonMembers);

    private static int[] Pick(int count, int take, SeededRandom random)
    {
        var order = Enumerable.Range(0, count).ToArray();
        random.Shuffle(order);
        var chosen = order[..take];
        Array.Sort(chosen);
        return chosen;
    }
}
