using System.Net;
using System.Net.Http.Headers;
using SecureMnist.Security;
using SecureMnist.Tests.Cli;

namespace SecureMnist.Tests.Service;

/// <summary>The real `securemnist serve` process on a sealed package: it answers, and its open files and temporary folder hold no plaintext weights.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class SealedServingTests(ServedModel model)
{
    /// <summary>Offsets of 64-byte runs of the plaintext weights found in the bytes (every 4 KiB of the weights is looked for).</summary>
    private static List<int> PlaintextRuns(ReadOnlySpan<byte> bytes, byte[] plaintext)
    {
        var found = new List<int>();
        for (var offset = 0; offset + 64 <= plaintext.Length; offset += 4096)
            if (bytes.IndexOf(plaintext.AsSpan(offset, 64)) >= 0) found.Add(offset);
        return found;
    }

    [Fact]
    public async Task A_sealed_package_serves_without_plaintext_weights_in_the_process_files_or_its_temporary_folder()
    {
        var run = Path.Combine(model.Directory, "sealed-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(run);
        using var signingKey = SigningKey.FromFile(Path.Combine(model.Directory, "signing.key"));
        using var kek = KeyEncryptionKey.Generate();
        var kekFile = Path.Combine(run, "weights.kek");
        kek.Save(kekFile);
        var sealedPackage = Path.Combine(run, "model");
        ModelPackage.Seal(model.PackageDirectory, signingKey.PublicKey, signingKey, kek, sealedPackage);
        var plaintext = File.ReadAllBytes(Path.Combine(model.PackageDirectory, ModelPackage.WeightsFile));
        Assert.NotEmpty(PlaintextRuns(plaintext, plaintext)); // the scan finds plaintext where there is some
        var temporary = Path.Combine(run, "tmp");
        Directory.CreateDirectory(temporary);

        var port = RunningService.FreePort();
        var environment = new Dictionary<string, string> { ["TMPDIR"] = temporary, [KeyEncryptionKey.EnvironmentVariable] = File.ReadAllText(kekFile).Trim() };
        using var serve = new CliProcess(model.Directory, environment, "serve", "--model", sealedPackage, "--public-key", model.PublicKeyPath, "--api-keys", model.ApiKeysPath,
            "--audit-dir", Path.Combine(run, "audit"), "--audit-key", Path.Combine(run, "audit.key"), "--urls", $"http://127.0.0.1:{port}", "--metrics-urls", "none");
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            await serve.WaitUntilReady(client, TimeSpan.FromMinutes(2));
            using var content = new ByteArrayContent(ServedModel.Png(model.TestPixels(0)));
            content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = content };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", model.Secrets["user"]);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

            // Every file the process holds open or has mapped, and everything in its temporary folder.
            var files = new HashSet<string>(StringComparer.Ordinal);
            foreach (var descriptor in Directory.GetFiles($"/proc/{serve.Id}/fd"))
                if (new FileInfo(descriptor).LinkTarget is { } target && File.Exists(target)) files.Add(target);
            foreach (var line in File.ReadAllLines($"/proc/{serve.Id}/maps"))
                if (line.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0 && File.Exists(line[slash..].Replace(" (deleted)", "", StringComparison.Ordinal))) files.Add(line[slash..]);
            files.UnionWith(Directory.GetFiles(temporary, "*", SearchOption.AllDirectories));
            Assert.Contains(files, f => f.EndsWith(".dll", StringComparison.Ordinal)); // the listing is real
            Assert.DoesNotContain(Path.GetFullPath(Path.Combine(model.PackageDirectory, ModelPackage.WeightsFile)), files);
            // Device and kernel files (/dev/zero, /proc/...) are not storage and read without end.
            files.RemoveWhere(f => f.StartsWith("/dev/", StringComparison.Ordinal) || f.StartsWith("/proc/", StringComparison.Ordinal) || f.StartsWith("/sys/", StringComparison.Ordinal));
            var holding = files.Where(f => new FileInfo(f).Length is > 0 and <= int.MaxValue && PlaintextRuns(File.ReadAllBytes(f), plaintext).Count > 0).ToList();
            Assert.True(holding.Count == 0, $"plaintext weights in: {string.Join(", ", holding)}");
        }
        finally
        {
            serve.Stop(TimeSpan.FromSeconds(30));
        }
    }
}
