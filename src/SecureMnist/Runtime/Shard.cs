using System.Globalization;

namespace SecureMnist.Runtime;

/// <summary>
/// Shard K of N (1-based): the jobs whose position in a fixed order is K - 1 modulo N. N processes, one per shard, share a piece of
/// work (the poisoning grid's cells, membership inference's shadow models) with nothing but a shared cache folder; every job belongs
/// to exactly one shard.
/// </summary>
public sealed record Shard(int Index, int Count)
{
    public static Shard All { get; } = new(1, 1);

    public static Shard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw new ArgumentException($"a shard is K/N, e.g. 2/4 (got '{text}')");
        if (count is < 1 or > 10_000) throw new ArgumentException($"the shard count must be 1 to 10,000 (got {count})");
        if (index < 1 || index > count) throw new ArgumentException($"shard {index} of {count} does not exist: K is 1 to N");
        return new Shard(index, count);
    }

    /// <summary>Whether the job at this position (0-based) is this shard's.</summary>
    public bool Owns(int position) => position >= 0 && position % Count == Index - 1;

    public IReadOnlyList<T> Select<T>(IReadOnlyList<T> jobs)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        return [.. jobs.Where((_, position) => Owns(position))];
    }

    public override string ToString() => $"{Index}/{Count}";
}
