using System.Diagnostics;

namespace SecureMnist.Tests.SupplyChain;

/// <summary>
/// The build settings every project here inherits (Directory.Build.props) are the CI gate: a security-rule violation fails the build. Each test builds a throwaway project under those settings.
/// </summary>
public sealed class BuildGateTests
{
    [Fact]
    public void A_security_analyzer_finding_fails_the_build()
    {
        // CA5394 (insecure randomness) is off unless the security rules are switched on.
        var (exitCode, output) = BuildProbe("var token = new System.Random().Next(); System.Console.WriteLine(token);", packageReference: null);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("error CA5394", output);
    }

    [Fact]
    public void The_probe_builds_when_it_breaks_no_rule()
    {
        var (exitCode, output) = BuildProbe("System.Console.WriteLine(System.Security.Cryptography.RandomNumberGenerator.GetInt32(10));", packageReference: null);
        Assert.True(exitCode == 0, output);
    }

    private static (int ExitCode, string Output) BuildProbe(string statement, (string Id, string Version)? packageReference)
    {
        var directory = TestPaths.NewScratchDirectory();
        try
        {
            var props = Path.Combine(TestPaths.RepositoryRoot, "Directory.Build.props");
            var reference = packageReference is { } p ? $"<ItemGroup><PackageReference Include=\"{p.Id}\" Version=\"{p.Version}\" /></ItemGroup>" : "";
            File.WriteAllText(Path.Combine(directory, "Probe.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <Import Project="{props}" />
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                    <RestorePackagesWithLockFile>false</RestorePackagesWithLockFile>
                  </PropertyGroup>
                  {reference}
                </Project>
                """);
            File.WriteAllText(Path.Combine(directory, "Program.cs"), statement + Environment.NewLine);
            var start = new ProcessStartInfo("dotnet", ["build", "Probe.csproj", "-nologo", "-v", "q"])
            {
                WorkingDirectory = directory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, stdout.Result + stderr);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
