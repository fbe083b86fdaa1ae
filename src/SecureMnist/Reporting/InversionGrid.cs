using SecureMnist.Privacy;

namespace SecureMnist.Reporting;

/// <summary>Model inversion as a picture: each class's reconstruction above its nearest member and nearest non-member, with the distances.</summary>
public static class InversionGrid
{
    public static void Save(string path, string title, InversionReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        ImageGrid.Save(path, title, [.. report.Classes.Select(c => $"{c.Label}")],
        [
            new GridRow("reconstruction", [.. report.Classes.Select(c => (c.Pixels, false, $"p {c.Probability:F2}"))]),
            new GridRow("nearest member", [.. report.Classes.Select(c => (c.NearestMember, false, $"L2 {c.NearestMemberL2:F1}"))]),
            new GridRow("nearest non-member", [.. report.Classes.Select(c => (c.NearestNonMember, false, $"L2 {c.NearestNonMemberL2:F1}"))]),
        ]);
    }
}
