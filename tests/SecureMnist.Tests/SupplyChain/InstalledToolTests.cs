using SecureMnist.Data;
using SecureMnist.Security;
using SecureMnist.Training;

namespace SecureMnist.Tests.SupplyChain;

/// <summary>What the installed tool relies on outside a checkout: where datasets go, the built-in lock files and snapshot, the stamped commit.</summary>
public sealed class InstalledToolTests
{
    [Fact]
    public void Datasets_live_in_the_repositorys_data_folder_there_and_under_the_users_data_folder_elsewhere()
    {
        var repository = TestPaths.NewScratchDirectory();
        File.WriteAllText(Path.Combine(repository, ToolHome.RepositoryMarker), "");
        var empty = TestPaths.NewScratchDirectory();
        var withData = TestPaths.NewScratchDirectory();
        Directory.CreateDirectory(Path.Combine(withData, "data"));
        Func<string, string?> Env(params (string Name, string Value)[] values) => name => values.FirstOrDefault(v => v.Name == name).Value;

        Assert.Equal("data", ToolHome.DataRoot(repository, Env(("HOME", "/home/u"))));
        Assert.Equal("data", ToolHome.DataRoot(withData, Env(("HOME", "/home/u"))));
        Assert.Equal("/home/u/.local/share/securemnist/data", ToolHome.DataRoot(empty, Env(("HOME", "/home/u"))));
        Assert.Equal("/x/securemnist/data", ToolHome.DataRoot(empty, Env(("HOME", "/home/u"), ("XDG_DATA_HOME", "/x"))));
        Assert.Equal("/sm/data", ToolHome.DataRoot(empty, Env(("HOME", "/home/u"), ("XDG_DATA_HOME", "/x"), (ToolHome.HomeVariable, "/sm"))));
        // SECUREMNIST_DATA names the folder outright, even in the repository.
        Assert.Equal("/d", ToolHome.DataRoot(repository, Env((ToolHome.DataVariable, "/d"), (ToolHome.HomeVariable, "/sm"))));
        Assert.Equal("/home/u/.local/share/securemnist/data", ToolHome.DataRoot(empty, Env(("HOME", "/home/u"), (ToolHome.HomeVariable, " "))));
    }

    [Fact]
    public void From_an_empty_folder_outside_the_repository_data_fetch_assess_and_deps_audit_run()
    {
        // A folder outside the repository with nothing in it, and a user data folder of its own: what a tool user starts from.
        var empty = Directory.CreateTempSubdirectory("securemnist-user-").FullName;
        var home = Directory.CreateTempSubdirectory("securemnist-home-").FullName;
        try
        {
            Assert.False(empty.StartsWith(Path.GetFullPath(TestPaths.RepositoryRoot), StringComparison.Ordinal));
            var environment = new Dictionary<string, string> { [ToolHome.HomeVariable] = home };
            var (fetched, _, fetchError) = Tests.Cli.CliProcess.RunAsUser(empty, environment, "data", "fetch");
            Assert.True(fetched == 0, fetchError);
            Assert.True(File.Exists(Path.Combine(home, "data", "mnist", "manifest.json")), "data fetch did not fill the user data folder");
            Assert.Empty(Directory.GetFileSystemEntries(empty)); // nothing written where the user stood

            var (assessed, _, assessError) = Tests.Cli.CliProcess.RunAsUser(empty, environment, "assess", "--stages", "data", "--json");
            Assert.True(assessed == 0, assessError);
            Assert.True(File.Exists(Path.Combine(empty, "out", "assess-quick", "report.html")));

            var (audited, auditOutput, auditError) = Tests.Cli.CliProcess.RunAsUser(empty, environment, "deps", "audit", "--json");
            Assert.True(audited == 0, auditError + auditOutput);
            Assert.Contains("lock files built into this securemnist", auditError, StringComparison.Ordinal);
            using var audit = System.Text.Json.JsonDocument.Parse(auditOutput);
            Assert.True(audit.RootElement.GetProperty("packages").GetInt32() > 40);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public void The_built_in_lock_files_and_advisory_snapshot_are_the_repositorys()
    {
        var root = TestPaths.RepositoryRoot;
        var repository = ShippedLocks.LockFiles(root);
        var builtIn = ShippedLocks.LockFiles(null);
        Assert.Equal(3, repository.Count);
        Assert.Equal(repository.Count, builtIn.Count);
        foreach (var file in repository)
        {
            var project = Path.GetFileName(Path.GetDirectoryName(file.Name)!);
            var copy = Assert.Single(builtIn, b => b.Name == $"built-in:lock/{project}/packages.lock.json");
            Assert.True(file.Bytes.AsSpan().SequenceEqual(copy.Bytes), $"the built-in lock file of {project} differs from the repository's: rebuild");
        }
        Assert.Equal(File.ReadAllBytes(Path.Combine(root, "build", "advisories.json")), ShippedLocks.Advisories(null).Bytes);
        Assert.Equal("built-in:build/advisories.json", ShippedLocks.Advisories(TestPaths.NewScratchDirectory()).Name);
        Assert.Equal(CycloneDxSbom.ReadLockFiles(repository.Select(f => f.Name)).Count, CycloneDxSbom.ReadLockFiles(builtIn.Select(f => (f.Name, f.Bytes))).Count);
    }

    [Fact]
    public void The_code_version_comes_from_the_checkout_holding_the_tool_not_the_working_folder()
    {
        // This test assembly sits in the repository's work tree; a folder outside any work tree has none.
        Assert.Equal(Path.GetFullPath(TestPaths.RepositoryRoot).TrimEnd('/'), CodeVersion.Checkout(AppContext.BaseDirectory)?.TrimEnd('/'));
        Assert.Null(CodeVersion.Checkout("/proc"));
        // An installed tool under a home folder that is itself a git repository (dotfiles) is not a checkout of this project.
        var home = TestPaths.NewScratchDirectory();
        Directory.CreateDirectory(Path.Combine(home, ".git"));
        var tool = Directory.CreateDirectory(Path.Combine(home, ".dotnet", "tools", ".store", "securemnist")).FullName;
        Assert.Null(CodeVersion.Checkout(tool));
        File.WriteAllText(Path.Combine(home, "SecureMnist.slnx"), "<Solution />");
        Assert.Equal(home.TrimEnd('/'), CodeVersion.Checkout(tool)?.TrimEnd('/'));
        var current = CodeVersion.Current();
        Assert.Matches("^[0-9a-f]{40}(\\+modified)?$", current);
        // The build stamps the commit it was built from into the assembly (the SDK's SourceRevisionId), which an installed tool reports.
        // It matches the checkout's state: "+modified" when this build saw uncommitted changes to tracked files.
        Assert.Matches("^[0-9a-f]{40}(\\+modified)?$", CodeVersion.Stamped(typeof(CodeVersion).Assembly) ?? "none");
    }

    [Theory]
    [InlineData("1.0.0+0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567")]
    [InlineData("1.0.0+0123456789abcdef0123456789abcdef01234567.modified", "0123456789abcdef0123456789abcdef01234567+modified")]
    [InlineData("1.0.0", null)]
    [InlineData("1.0.0+0123456789abcdef", null)]
    [InlineData("1.0.0+0123456789ABCDEF0123456789ABCDEF01234567", null)]
    [InlineData("1.0.0+.modified", null)]
    [InlineData(null, null)]
    public void A_stamped_version_gives_its_commit_and_says_when_the_work_tree_was_modified(string? informational, string? expected) =>
        Assert.Equal(expected, CodeVersion.FromInformationalVersion(informational));

    [Fact]
    public void The_build_stamps_the_commit_it_was_built_from()
    {
        // The stamp is the build's state: the commit, and "+modified" when tracked files had uncommitted changes. A work tree that is
        // clean now was clean at the build (CI's fresh clone), so its stamp is the bare commit; one modified now may have been modified after.
        var commit = Git("rev-parse", "HEAD");
        var stamped = CodeVersion.Stamped(typeof(CodeVersion).Assembly);
        Assert.StartsWith(commit, stamped);
        if (Git("status", "--porcelain", "--untracked-files=no").Length == 0) Assert.Equal(commit, stamped);
    }

    private static string Git(params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo("git", ["-C", TestPaths.RepositoryRoot, .. arguments]) { RedirectStandardOutput = true };
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return output;
    }
}
