using System.Globalization;
using SecureMnist.Attacks.Evasion;
using SecureMnist.Data;

namespace SecureMnist.Reporting;

/// <summary>Clean / adversarial / perturbation pictures for broken inputs, one per class where possible.</summary>
public static class AdversarialGrid
{
    public static int Save(string path, LabeledImages clean, RobustnessRun run, int maxRows = 10)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(run);
        var pixels = clean.PixelsPerImage;
        var broken = Enumerable.Range(0, clean.Count).Where(i => run.BrokenBy[i] is not null).ToList();
        // Prefer one example per true class, then fill up in index order.
        var chosen = broken.GroupBy(i => clean.Labels[i]).OrderBy(g => g.Key).Select(g => g.First()).Take(maxRows).ToList();
        chosen.AddRange(broken.Except(chosen).Take(maxRows - chosen.Count));
        if (chosen.Count == 0) return 0;
        var rows = chosen.OrderBy(i => clean.Labels[i]).Select(i =>
        {
            var original = clean.Image(i).ToArray().Select(b => b / 255f).ToArray();
            var adversarial = run.Adversarial.AsSpan(i * pixels, pixels).ToArray();
            var delta = adversarial.Zip(original, (a, o) => a - o).ToArray();
            var linf = delta.Max(Math.Abs);
            var l2 = Math.Sqrt(delta.Sum(d => (double)d * d));
            return new GridRow(
                $"#{i} {Short(run.BrokenBy[i]!)}",
                [
                    (original, false, $"true {clean.Labels[i]}, pred {run.CleanPredictions[i]}"),
                    (adversarial, false, $"pred {run.AdversarialPredictions[i]}"),
                    (delta, true, string.Create(CultureInfo.InvariantCulture, $"Linf {linf:F2} L2 {l2:F2}")),
                ]);
        }).ToList();
        ImageGrid.Save(path, "adversarial examples", ["clean", "adversarial", "perturbation"], rows);
        return rows.Count;
    }

    private static string Short(string attack) => attack.Split('(')[0];
}
