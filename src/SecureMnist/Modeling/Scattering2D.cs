using System.Numerics;
using static TorchSharp.torch;

namespace SecureMnist.Modeling;

/// <summary>
/// The 2D scattering transform (Mallat 2012; Bruna and Mallat 2013) with Morlet wavelets, as the kymatio library defines it and as
/// Tramèr and Boneh (2021) use it for private learning: a fixed, untrained feature map. With <c>J</c> scales and <c>L</c> angles an
/// image becomes 1 + J L + L^2 J (J - 1) / 2 channels (81 for J = 2, L = 8) at 1/2^J of its size (7x7 for MNIST):
/// <list type="bullet">
/// <item>order 0: the image low-passed by a Gaussian phi of width 0.8 x 2^(J-1), subsampled by 2^J;</item>
/// <item>order 1: |x * psi(j, theta)| * phi for every scale j and angle theta;</item>
/// <item>order 2: ||x * psi(j1, theta1)| * psi(j2, theta2)| * phi for every j2 &gt; j1.</item>
/// </list>
/// The wavelets are Morlet: a Gabor of width 0.8 x 2^j, frequency 3 pi / 4 / 2^j and slant 4 / L, less the Gaussian that makes its
/// mean exactly zero. Convolutions are products in the Fourier domain on the image reflect-padded to a multiple of 2^J (36x36 for
/// 28x28), subsampling is periodization of the spectrum, and one border pixel is cropped from each side of the result.
/// It has no parameters: the filters are plain tensors, not part of any model's weights.
/// </summary>
public sealed class Scattering2D : IDisposable
{
    private readonly int height;
    private readonly int width;
    private readonly int paddedHeight;
    private readonly int paddedWidth;

    /// <summary>Per scale j, the L wavelets in Fourier at every resolution they are used at ([L, M / 2^r, N / 2^r] per level r).</summary>
    private readonly Tensor[][] psi;

    /// <summary>The low-pass filter in Fourier at resolutions 0..J-1.</summary>
    private readonly Tensor[] phi;

    public Scattering2D(int height = 28, int width = 28, int scales = 2, int angles = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scales, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(angles, 1);
        if (1 << scales > height || 1 << scales > width)
            throw new ArgumentException($"a {height}x{width} image cannot be scattered over {scales} scales: its sides must be at least 2^{scales}");
        (this.height, this.width, Scales, Angles) = (height, width, scales, angles);
        paddedHeight = ((height + (1 << scales)) / (1 << scales) + 1) * (1 << scales);
        paddedWidth = ((width + (1 << scales)) / (1 << scales) + 1) * (1 << scales);
        psi = new Tensor[scales][];
        for (var j = 0; j < scales; j++)
        {
            var levels = Math.Min(j + 1, Math.Max(scales - 1, 1));
            var spectra = Enumerable.Range(0, angles).Select(theta => FourierReal(Morlet(paddedHeight, paddedWidth, 0.8 * Math.Pow(2, j),
                ((int)(angles - angles / 2.0 - 1) - theta) * Math.PI / angles, 0.75 * Math.PI / Math.Pow(2, j), 4.0 / angles))).ToArray();
            psi[j] = [.. Enumerable.Range(0, levels).Select(r => stack(spectra.Select(s => Periodized(s, r)).ToArray()))];
            foreach (var s in spectra) s.Dispose();
        }
        using var lowPass = FourierReal(Gabor(paddedHeight, paddedWidth, 0.8 * Math.Pow(2, scales - 1), 0, 0, 1));
        phi = [.. Enumerable.Range(0, scales).Select(r => Periodized(lowPass, r))];
    }

    public int Scales { get; }

    public int Angles { get; }

    /// <summary>Output channels: 1 + J L + L^2 J (J - 1) / 2.</summary>
    public int Channels => 1 + Scales * Angles + Angles * Angles * Scales * (Scales - 1) / 2;

    public int OutputHeight => height >> Scales;

    public int OutputWidth => width >> Scales;

    /// <summary>The coefficients of a batch of single-channel images [N, 1, H, W] (or [N, H, W]): [N, channels, H / 2^J, W / 2^J], float32.</summary>
    public Tensor Transform(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var batch = images.shape[0];
        if (images.numel() != batch * height * width)
            throw new ArgumentException($"the scattering transform was built for {height}x{width} single-channel images; got shape [{string.Join(", ", images.shape)}]");
        using var scope = NewDisposeScope();
        var x = images.reshape(batch, 1, height, width).to(ScalarType.Float32);
        int top = (paddedHeight - height) / 2, bottom = (paddedHeight - height + 1) / 2, left = (paddedWidth - width) / 2, right = (paddedWidth - width + 1) / 2;
        var padded = nn.functional.pad(x, [left, right, top, bottom], TorchSharp.PaddingModes.Reflect).squeeze(1);
        var u0 = fft.fft2(complex(padded, zeros_like(padded)));
        var outputs = new List<Tensor> { Unpad(fft.ifft2(Subsample(u0 * phi[0], 1 << Scales)).real).unsqueeze(1) };
        var second = new List<Tensor>();
        for (var j1 = 0; j1 < Scales; j1++)
        {
            // |x * psi(j1, .)|, kept in Fourier at resolution j1 for the next order.
            var a = u0.unsqueeze(1) * psi[j1][0];
            if (j1 > 0) a = Subsample(a, 1 << j1);
            var u1 = fft.fft2(fft.ifft2(a).abs());
            outputs.Add(Unpad(fft.ifft2(Subsample(u1 * phi[j1], 1 << (Scales - j1))).real));
            var paths = new List<Tensor>();
            for (var j2 = j1 + 1; j2 < Scales; j2++)
            {
                var c = FilteredSubsample(u1, psi[j2][j1], 1 << (j2 - j1));
                var u2 = fft.fft2(fft.ifft2(c).abs());
                paths.Add(Unpad(fft.ifft2(Subsample(u2 * phi[j2], 1 << (Scales - j2))).real)); // [N, L, L, h, w]
            }
            if (paths.Count > 0) second.Add(cat(paths, 2).flatten(1, 2)); // for each theta1: every (j2, theta2), as kymatio orders them
        }
        return cat([.. outputs, .. second], 1).contiguous().MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var level in psi.SelectMany(p => p)) level.Dispose();
        foreach (var level in phi) level.Dispose();
    }

    /// <summary>Subsampling by <paramref name="k"/> in space is periodization in Fourier: the mean of the k x k tiles of the spectrum.</summary>
    private static Tensor Subsample(Tensor spectrum, int k)
    {
        var shape = spectrum.shape;
        long rows = shape[^2], columns = shape[^1];
        var lead = shape[..^2];
        var tiles = spectrum.reshape([.. lead, k, rows / k, k, columns / k]);
        return tiles.mean([-2]).mean([-3]);
    }

    /// <summary>
    /// Every signal [N, A, M, M'] times every filter [B, M, M'], subsampled by <paramref name="k"/>: [N, A, B, M / k, M' / k]. The same as
    /// <see cref="Subsample"/> of the full product, contracted tile by tile so the full-resolution product [N, A, B, M, M'] never exists.
    /// </summary>
    private static Tensor FilteredSubsample(Tensor signals, Tensor filters, int k)
    {
        long n = signals.shape[0], a = signals.shape[1], rows = signals.shape[2], columns = signals.shape[3], b = filters.shape[0];
        long h = rows / k, w = columns / k;
        // [h, w, N A, k k] x [h, w, k k, B] -> [h, w, N A, B]
        var tiledSignals = signals.reshape(n * a, k, h, k, w).permute(2, 4, 0, 1, 3).reshape(h, w, n * a, k * k);
        var tiledFilters = filters.reshape(b, k, h, k, w).permute(2, 4, 1, 3, 0).reshape(h, w, k * k, b).to(signals.dtype);
        var product = tiledSignals.matmul(tiledFilters) / (k * k);
        return product.reshape(h, w, n, a, b).permute(2, 3, 4, 0, 1).contiguous();
    }


    /// <summary>Crops one pixel from each border, which the padding and subsampling left to the reflection.</summary>
    private static Tensor Unpad(Tensor values)
    {
        var rows = values.shape[^2];
        var columns = values.shape[^1];
        return values.narrow(-2, 1, rows - 2).narrow(-1, 1, columns - 2);
    }

    /// <summary>The real part of a filter's 2D DFT (its imaginary part vanishes for these symmetric filters), as float32 [M, N].</summary>
    private static Tensor FourierReal(Complex[,] filter)
    {
        int m = filter.GetLength(0), n = filter.GetLength(1);
        var re = new double[m * n];
        var im = new double[m * n];
        for (var r = 0; r < m; r++)
            for (var c = 0; c < n; c++) (re[r * n + c], im[r * n + c]) = (filter[r, c].Real, filter[r, c].Imaginary);
        using var scope = NewDisposeScope();
        var spectrum = fft.fft2(complex(tensor(re).reshape(m, n), tensor(im).reshape(m, n)));
        return spectrum.real.to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A filter's spectrum cropped to 1/2^res of its size for signals subsampled that far: the frequencies beyond the crop's band are
    /// zeroed, and the spectrum is folded (summed) onto the crop.
    /// </summary>
    private static Tensor Periodized(Tensor spectrum, int res)
    {
        int m = (int)spectrum.shape[0], n = (int)spectrum.shape[1];
        var values = spectrum.to(ScalarType.Float64).data<double>().ToArray();
        int lengthX = (int)(m * (1 - Math.Pow(2, -res))), startX = (int)(m * Math.Pow(2, -res - 1));
        int lengthY = (int)(n * (1 - Math.Pow(2, -res))), startY = (int)(n * Math.Pow(2, -res - 1));
        for (var r = 0; r < m; r++)
            for (var c = 0; c < n; c++)
                if ((r >= startX && r < startX + lengthX) || (c >= startY && c < startY + lengthY)) values[r * n + c] = 0;
        int factor = 1 << res, cropM = m / factor, cropN = n / factor;
        var crop = new double[cropM * cropN];
        for (var k = 0; k < cropM; k++)
            for (var l = 0; l < cropN; l++)
                for (var i = 0; i < factor; i++)
                    for (var j = 0; j < factor; j++)
                        crop[k * cropN + l] += values[(k + i * cropM) * n + l + j * cropN];
        return tensor(crop).reshape(cropM, cropN).to(ScalarType.Float32);
    }

    /// <summary>A Morlet wavelet in space: the Gabor less the Gaussian envelope scaled so that the sum is exactly zero.</summary>
    internal static Complex[,] Morlet(int m, int n, double sigma, double theta, double xi, double slant)
    {
        var wave = Gabor(m, n, sigma, theta, xi, slant);
        var envelope = Gabor(m, n, sigma, theta, 0, slant);
        Complex waveSum = Complex.Zero, envelopeSum = Complex.Zero;
        foreach (var v in wave) waveSum += v;
        foreach (var v in envelope) envelopeSum += v;
        var k = waveSum / envelopeSum;
        var morlet = new Complex[m, n];
        for (var r = 0; r < m; r++)
            for (var c = 0; c < n; c++) morlet[r, c] = wave[r, c] - k * envelope[r, c];
        return morlet;
    }

    /// <summary>
    /// A Gabor filter in space on an m x n periodic grid: a Gaussian envelope of width sigma, stretched by 1/slant across angle theta,
    /// times a plane wave of frequency xi along theta; summed over the 5x5 nearest periods and normalized by 2 pi sigma^2 / slant.
    /// </summary>
    internal static Complex[,] Gabor(int m, int n, double sigma, double theta, double xi, double slant)
    {
        double cos = Math.Cos(theta), sin = Math.Sin(theta), s2 = slant * slant;
        // R D R^-1 / (2 sigma^2) with R the rotation by theta and D = diag(1, slant^2).
        var c00 = (cos * cos + s2 * sin * sin) / (2 * sigma * sigma);
        var c01 = (cos * sin - s2 * sin * cos) / (2 * sigma * sigma);
        var c11 = (sin * sin + s2 * cos * cos) / (2 * sigma * sigma);
        var gabor = new Complex[m, n];
        for (var ex = -2; ex <= 2; ex++)
            for (var ey = -2; ey <= 2; ey++)
                for (var r = 0; r < m; r++)
                    for (var c = 0; c < n; c++)
                    {
                        double x = ex * m + r, y = ey * n + c;
                        var real = -(c00 * x * x + 2 * c01 * x * y + c11 * y * y);
                        var phase = x * xi * cos + y * xi * sin;
                        gabor[r, c] += Complex.Exp(new Complex(real, phase));
                    }
        var norm = 2 * Math.PI * sigma * sigma / slant;
        for (var r = 0; r < m; r++)
            for (var c = 0; c < n; c++) gabor[r, c] /= norm;
        return gabor;
    }
}
