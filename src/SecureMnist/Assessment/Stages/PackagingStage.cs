using SecureMnist.Security;

namespace SecureMnist.Assessment;

/// <summary>Signs, verifies, then flips bits of a copy's weights, manifest and signature and counts how many changes verification refuses.</summary>
public sealed class PackagingStage : AssessmentStage
{
    public static readonly MetricKey SignedPackageVerifies = new("packaging.signed_package_verifies");
    public static readonly MetricKey TamperedRefused = new("packaging.tampered_refused");
    public static readonly MetricKey TamperedTried = new("packaging.tampered_tried");
    public static readonly MetricKey UnsignedRefused = new("packaging.unsigned_refused");

    public override string Name => "packaging";
    public override IReadOnlyList<string> DependsOn => ["baseline"];
    public override IReadOnlyList<MetricKey> MetricKeys => [SignedPackageVerifies, TamperedRefused, TamperedTried, UnsignedRefused];
    public override object Inputs(StageContext context) => new { version = 1 };

    public override StageOutput Run(StageContext context, string directory)
    {
        var package = context.FileOf("baseline", "model");
        var key = context.Key;
        var verified = ModelPackage.Verify(package, key.PublicKey);
        var copy = Path.Combine(directory, "tampered");
        var tried = 0;
        var refused = 0;
        foreach (var file in new[] { ModelPackage.WeightsFile, ModelPackage.ManifestFile, ModelPackage.SignatureFile })
        {
            var original = File.ReadAllBytes(Path.Combine(package, file));
            var positions = Enumerable.Range(0, 20).Select(i => (int)((long)i * (original.Length - 1) / 19)).Distinct();
            foreach (var position in positions)
            {
                if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true);
                Directory.CreateDirectory(copy);
                foreach (var f in Directory.GetFiles(package)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
                var tampered = (byte[])original.Clone();
                tampered[position] ^= 0x01;
                File.WriteAllBytes(Path.Combine(copy, file), tampered);
                tried++;
                if (!ModelPackage.Verify(copy, key.PublicKey).Trusted) refused++;
            }
        }
        Directory.Delete(copy, recursive: true);
        var unsigned = Path.Combine(directory, "unsigned");
        Directory.CreateDirectory(unsigned);
        foreach (var f in Directory.GetFiles(package).Where(f => Path.GetFileName(f) != ModelPackage.SignatureFile)) File.Copy(f, Path.Combine(unsigned, Path.GetFileName(f)), overwrite: true);
        var unsignedRefused = !ModelPackage.Verify(unsigned, key.PublicKey).Trusted;
        Directory.Delete(unsigned, recursive: true);
        return new(new Dictionary<string, Metric>
        {
            [SignedPackageVerifies.Name] = Metric.Count(verified.Trusted ? 1 : 0, "the signed baseline package verifies (1 = yes)"),
            [TamperedTried.Name] = Metric.Count(tried, "single-bit changes made to weights, manifest and signature"),
            [TamperedRefused.Name] = Metric.Count(refused, "single-bit changes refused by verification"),
            [UnsignedRefused.Name] = Metric.Count(unsignedRefused ? 1 : 0, "an unsigned copy is refused (1 = yes)"),
        }, new Dictionary<string, string>());
    }
}
