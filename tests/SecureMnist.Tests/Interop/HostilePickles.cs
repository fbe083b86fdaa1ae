namespace SecureMnist.Tests.Interop;

/// <summary>Pickles that cost a naive reader exponential time or unbounded memory, each a few bytes to a few MB.</summary>
internal static class HostilePickles
{
    public static byte[] Build(string name) => name switch
    {
        "shared-references-64" => SharedReferences(levels: 64),
        "list-of-a-million" => Repeat(new PickleWriter().Raw("]"), "Na", 1_000_000).Stop().ToArray(),
        "appends-of-a-million" => Repeat(new PickleWriter().Raw("]("), "N", 1_000_000).Raw("e").Stop().ToArray(),
        "string-of-100-mb" => new PickleWriter().Raw("X").Raw(BitConverter.GetBytes(100_000_000)).Raw("abc").Stop().ToArray(),
        "tuples-10000-deep" => Repeat(new PickleWriter().Raw(")"), "\x85", 10_000).Stop().ToArray(),
        "lists-10000-deep" => Repeat(Repeat(new PickleWriter(), "]", 10_000), "a", 9_999).Stop().ToArray(),
        "marks-10000-deep" => Repeat(new PickleWriter(), "(", 10_001).Stop().ToArray(),
        "list-in-itself" => new PickleWriter().Raw("]q\0h\0a").Stop().ToArray(),
        "list-grows-after-sharing" => new PickleWriter().Raw("]q\0h\0\x85h\0Na").Stop().ToArray(),
        _ => throw new ArgumentException($"no hostile pickle named {name}", nameof(name)),
    };

    /// <summary>
    /// Level 0 is an empty tuple; level k is a tuple of four BINGET references to level k-1. The stream grows by 14 bytes
    /// a level, the tree it describes by a factor of four.
    /// </summary>
    public static byte[] SharedReferences(int levels)
    {
        // All levels stay on the stack above one MARK and end in one tuple of them, so the pickle has a single value.
        var pickle = new PickleWriter().Raw("(").Raw(")").Raw("r").Raw(BitConverter.GetBytes(0));
        for (var level = 1; level <= levels; level++)
        {
            pickle.Raw("(");
            for (var i = 0; i < 4; i++) pickle.Raw("j").Raw(BitConverter.GetBytes(level - 1));
            pickle.Raw("t").Raw("r").Raw(BitConverter.GetBytes(level));
        }
        return pickle.Raw("t").Stop().ToArray();
    }

    private static PickleWriter Repeat(PickleWriter pickle, string opcodes, int times)
    {
        var bytes = opcodes.Select(c => (byte)c).ToArray();
        for (var i = 0; i < times; i++) pickle.Raw(bytes);
        return pickle;
    }
}
