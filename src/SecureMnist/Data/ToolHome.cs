namespace SecureMnist.Data;

/// <summary>
/// Where the tool keeps what outlives one folder. In a checkout of the repository (its solution file in the working folder), or where
/// a <c>data</c> folder is already present, datasets live in <c>./data</c> as they always have. Anywhere else, as an installed
/// <c>dotnet tool</c> runs, they live under the user's data folder: <c>$SECUREMNIST_HOME</c>, else <c>$XDG_DATA_HOME/securemnist</c>,
/// else <c>~/.local/share/securemnist</c>. <c>$SECUREMNIST_DATA</c> (and <c>--data-root</c>) name the datasets folder outright.
/// </summary>
public static class ToolHome
{
    public const string HomeVariable = "SECUREMNIST_HOME";
    public const string DataVariable = "SECUREMNIST_DATA";
    public const string RepositoryMarker = "SecureMnist.slnx";

    /// <summary>The datasets folder for a process working in <paramref name="workingDirectory"/>, with <paramref name="environment"/> read for the variables.</summary>
    public static string DataRoot(string workingDirectory, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(workingDirectory);
        ArgumentNullException.ThrowIfNull(environment);
        if (NonEmpty(environment(DataVariable)) is { } data) return data;
        if (File.Exists(Path.Combine(workingDirectory, RepositoryMarker)) || Directory.Exists(Path.Combine(workingDirectory, DatasetStore.DefaultRoot)))
            return DatasetStore.DefaultRoot;
        return Path.Combine(Home(environment), DatasetStore.DefaultRoot);
    }

    /// <summary>The datasets folder for this process.</summary>
    public static string DataRoot() => DataRoot(Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable);

    /// <summary>The user's folder for the tool: $SECUREMNIST_HOME, $XDG_DATA_HOME/securemnist or ~/.local/share/securemnist.</summary>
    public static string Home(Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (NonEmpty(environment(HomeVariable)) is { } home) return home;
        if (NonEmpty(environment("XDG_DATA_HOME")) is { } xdg) return Path.Combine(xdg, "securemnist");
        var user = NonEmpty(environment("HOME")) ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(user, ".local", "share", "securemnist");
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
