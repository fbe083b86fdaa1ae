using SecureMnist.Data;

namespace SecureMnist.Serving;

/// <summary>Simple image statistics of a 28x28 input that separate handwritten digits from other pictures.</summary>
public sealed record DigitFeatures(double MeanIntensity, double InkFraction, double BorderInk)
{
    public static DigitFeatures Of(ReadOnlySpan<float> pixels)
    {
        double total = 0, border = 0;
        var ink = 0;
        for (var i = 0; i < pixels.Length; i++)
        {
            var v = pixels[i];
            total += v;
            if (v > 0.5f) ink++;
            int x = i % DigitImage.Side, y = i / DigitImage.Side;
            if (x < 2 || y < 2 || x >= DigitImage.Side - 2 || y >= DigitImage.Side - 2) border += v;
        }
        return new DigitFeatures(total / pixels.Length, (double)ink / pixels.Length, total == 0 ? 1 : border / total);
    }
}

/// <summary>
/// The range of each <see cref="DigitFeatures"/> value over a reference set of real digits (its <see cref="Coverage"/>
/// central quantiles); an input outside any range is refused as "not a digit". Fitted on the MNIST training set.
/// </summary>
public sealed record DigitStatistics(DigitFeatures Low, DigitFeatures High, double Coverage)
{
    public static DigitStatistics Fit(LabeledImages reference, double coverage = 0.999)
    {
        ArgumentNullException.ThrowIfNull(reference);
        if (coverage is <= 0.5 or >= 1) throw new ArgumentOutOfRangeException(nameof(coverage), coverage, "coverage must be in (0.5, 1)");
        var features = new DigitFeatures[reference.Count];
        var pixels = new float[reference.PixelsPerImage];
        for (var n = 0; n < reference.Count; n++)
        {
            var image = reference.Image(n);
            for (var i = 0; i < pixels.Length; i++) pixels[i] = image[i] / 255f;
            features[n] = DigitFeatures.Of(pixels);
        }
        var tail = (1 - coverage) / 2;
        double Quantile(Func<DigitFeatures, double> pick, double q)
        {
            var sorted = features.Select(pick).Order().ToArray();
            return sorted[(int)Math.Clamp(Math.Round(q * (sorted.Length - 1)), 0, sorted.Length - 1)];
        }
        DigitFeatures At(double q) => new(Quantile(f => f.MeanIntensity, q), Quantile(f => f.InkFraction, q), Quantile(f => f.BorderInk, q));
        return new DigitStatistics(At(tail), At(1 - tail), coverage);
    }

    /// <summary>Null when the input looks like a digit, otherwise which statistic is out of range.</summary>
    public string? Check(ReadOnlySpan<float> pixels)
    {
        var f = DigitFeatures.Of(pixels);
        if (f.InkFraction == 0 && f.MeanIntensity < 0.01) return "the image is blank";
        if (f.MeanIntensity < Low.MeanIntensity || f.MeanIntensity > High.MeanIntensity)
            return $"mean intensity {f.MeanIntensity:F3} is outside the range of real digits [{Low.MeanIntensity:F3}, {High.MeanIntensity:F3}] (digits are white ink on black)";
        if (f.InkFraction < Low.InkFraction || f.InkFraction > High.InkFraction)
            return $"ink covers {f.InkFraction:P1} of the image, outside the range of real digits [{Low.InkFraction:P1}, {High.InkFraction:P1}]";
        if (f.BorderInk > High.BorderInk)
            return $"{f.BorderInk:P1} of the ink touches the border (real digits: at most {High.BorderInk:P1})";
        return null;
    }
}
