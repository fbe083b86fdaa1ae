using SecureMnist.Data;

namespace SecureMnist.Tests;

/// <summary>Where the tests find the repository, the real MNIST files, and a scratch folder.</summary>
internal static class TestPaths
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string DataRoot => Environment.GetEnvironmentVariable("SECUREMNIST_DATA") ?? Path.Combine(RepositoryRoot, "data");

    /// <summary>The verified MNIST set; fails with the command to run when it is not installed.</summary>
    public static Dataset Mnist()
    {
        var store = new DatasetStore(DataRoot);
        if (!Directory.Exists(store.DefaultDirectory("mnist")))
            throw new InvalidOperationException($"MNIST is not installed in {DataRoot}; run ./securemnist data fetch (the test command does this)");
        return store.Load("mnist");
    }

    /// <summary>
    /// MNIST with only its first <paramref name="testImages"/> test images, for tests that train but do not measure test
    /// accuracy closely: a trainer evaluates its test set after every epoch, and 10,000 images cost more than the training.
    /// </summary>
    public static Dataset Mnist(int testImages)
    {
        var mnist = Mnist();
        return mnist with { Test = mnist.Test.Take(testImages) };
    }

    public static string NewScratchDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "securemnist-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "SecureMnist.slnx"))) return directory.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (SecureMnist.slnx) above " + AppContext.BaseDirectory);
    }
}
