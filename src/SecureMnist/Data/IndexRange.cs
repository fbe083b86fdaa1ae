using System.Globalization;

namespace SecureMnist.Data;

/// <summary>
/// A half-open range [Start, End) of image indices, written START:END as on the command line ("1000:" runs to the end). Splitting a long
/// evaluation into ranges lets several processes share it, and <c>attack combine</c> joins their per-input results.
/// </summary>
public readonly record struct IndexRange(int Start, int? End)
{
    /// <summary>Parses START:END or START: (to the end); <paramref name="flag"/> names the option in errors.</summary>
    public static IndexRange Parse(string text, string flag = "--range")
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length != 2)
            throw new ArgumentException($"{flag} takes START:END, 0-based with END excluded, e.g. 0:5000 or 5000: (to the end); got '{text}'");
        var start = Bound(parts[0], "START", text, flag);
        int? end = parts[1].Trim().Length == 0 ? null : Bound(parts[1], "END", text, flag);
        if (end is { } e && e <= start) throw new ArgumentException($"{flag}: END must be greater than START (got '{text}')");
        return new IndexRange(start, end);
    }

    /// <summary>The range inside a set of <paramref name="count"/> images; refuses one that reaches past it.</summary>
    public (int Start, int End) Within(int count, string flag = "--range")
    {
        var end = End ?? count;
        if (Start >= count || end > count)
            throw new ArgumentException($"{flag} {this} reaches past the {count} images of the set; the last index is {count - 1}");
        return (Start, end);
    }

    public override string ToString() => $"{Start}:{End?.ToString(CultureInfo.InvariantCulture)}";

    private static int Bound(string value, string name, string text, string flag) =>
        int.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : throw new ArgumentException($"{flag}: {name} in '{text}' is not a whole number >= 0");
}
