using SecureMnist.IO;

namespace SecureMnist.Tests.IO;

public sealed class JsonFormatTests
{
    [Fact]
    public void A_file_over_the_limit_is_refused_and_one_at_the_limit_is_read()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, new byte[100]);
            Assert.Equal(100, JsonFormat.ReadBounded(path, maxBytes: 100).Length);
            Assert.Contains("over the 99 byte limit", Assert.Throws<InvalidDataException>(() => JsonFormat.ReadBounded(path, maxBytes: 99)).Message, StringComparison.Ordinal);
            Assert.Throws<InvalidDataException>(() => JsonFormat.Load<Dictionary<string, int>>(path, maxBytes: 99));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var path = Path.Combine(Path.GetTempPath(), $"absent-{Guid.NewGuid():N}.json");
        Assert.Contains(path, Assert.Throws<FileNotFoundException>(() => JsonFormat.ReadBounded(path)).Message, StringComparison.Ordinal);
    }
}
