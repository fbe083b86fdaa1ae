using SecureMnist.Data;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SecureMnist.Privacy;

/// <summary>How model inversion searches: gradient ascent steps, learning rate, and the weights of its image priors.</summary>
/// <param name="TotalVariation">Weight of the total-variation prior (smooth strokes rather than adversarial noise).</param>
/// <param name="L2">Weight of an L2 prior on the pixels (dark background, as digits have).</param>
/// <param name="Reference">Images per class drawn from each of the member and non-member sets to measure distances against.</param>
public sealed record InversionOptions(int Steps = 500, double LearningRate = 0.05, double TotalVariation = 0.3, double L2 = 0.01, int Reference = 800, int Seed = 1)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Steps, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Steps, 100_000);
        if (!(LearningRate > 0 && LearningRate <= 10)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "the learning rate must be in (0, 10]");
        if (!(TotalVariation >= 0 && TotalVariation < 1000)) throw new ArgumentOutOfRangeException(nameof(TotalVariation), TotalVariation, "the total-variation weight must be in [0, 1000)");
        if (!(L2 >= 0 && L2 < 1000)) throw new ArgumentOutOfRangeException(nameof(L2), L2, "the L2 weight must be in [0, 1000)");
        ArgumentOutOfRangeException.ThrowIfLessThan(Reference, 1);
    }
}

/// <summary>One class's reconstruction and how close it comes to real images of that class.</summary>
/// <param name="NearestMemberL2">L2 distance to the nearest training image (member) of the class, among <see cref="InversionReport.ReferencePerClass"/> drawn.</param>
/// <param name="NearestNonMemberL2">The same against as many test images (non-members) of the class.</param>
public sealed record InversionClass(int Label, float[] Pixels, double Probability, double NearestMemberL2, double NearestNonMemberL2, double BestMemberSsim, double BestNonMemberSsim,
    float[] NearestMember, float[] NearestNonMember);

public sealed record InversionReport(IReadOnlyList<InversionClass> Classes, int ReferencePerClass, InversionOptions Options)
{
    /// <summary>Classes whose reconstruction is closer (L2) to a member than to any non-member: about half when nothing about members leaks.</summary>
    public int CloserToMembers => Classes.Count(c => c.NearestMemberL2 < c.NearestNonMemberL2);
}

/// <summary>
/// Model inversion (Fredrikson et al. 2015): from the model alone, a representative input per class by gradient ascent on that
/// class's logit, with total-variation and L2 priors so the result looks like an image rather than an adversarial pattern. The
/// pixels are sigmoid(w), so they stay in [0, 1] without clipping. Whether the reconstructions reveal training data is measured by
/// comparing their nearest member with their nearest non-member at equal reference-set sizes (L2 and SSIM).
/// </summary>
public static class ModelInversion
{
    public static InversionReport Run(Module<Tensor, Tensor> network, LabeledImages members, LabeledImages nonMembers, InversionOptions options, int classCount = 10)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(nonMembers);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var (images, probabilities) = Reconstruct(network, options, classCount);
        var random = new SeededRandom(options.Seed);
        var perClass = Enumerable.Range(0, classCount).Min(c => Math.Min(Count(members, c), Count(nonMembers, c)));
        perClass = Math.Min(perClass, options.Reference);
        if (perClass == 0) throw new ArgumentException("the member and non-member sets need images of every class to compare against");
        var classes = new List<InversionClass>(classCount);
        for (var c = 0; c < classCount; c++)
        {
            using var scope = NewDisposeScope();
            var reconstruction = images[c];
            var memberSample = Sample(members, c, perClass, random);
            var nonMemberSample = Sample(nonMembers, c, perClass, random);
            var (memberL2, memberSsim, nearestMember) = Nearest(reconstruction, memberSample);
            var (nonMemberL2, nonMemberSsim, nearestNonMember) = Nearest(reconstruction, nonMemberSample);
            classes.Add(new InversionClass(c, reconstruction, probabilities[c], memberL2, nonMemberL2, memberSsim, nonMemberSsim, nearestMember, nearestNonMember));
        }
        return new InversionReport(classes, perClass, options);
    }

    /// <summary>The reconstructions (28x28 in [0, 1]) and the model's probability for their class.</summary>
    public static (float[][] Images, double[] Probabilities) Reconstruct(Module<Tensor, Tensor> network, InversionOptions options, int classCount = 10)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        network.eval();
        var frozen = network.parameters().Select(p => (p, p.requires_grad)).ToList();
        foreach (var (p, _) in frozen) p.requires_grad_(false);
        try
        {
            manual_seed(options.Seed);
            var w = Parameter((randn(classCount, 1, 28, 28) * 0.1) - 2); // sigmoid(-2) = 0.12: a dark start
            var targets = arange(classCount, ScalarType.Int64);
            using var optimizer = optim.Adam([w], options.LearningRate);
            for (var step = 0; step < options.Steps; step++)
            {
                using var stepScope = NewDisposeScope();
                optimizer.zero_grad();
                var x = w.sigmoid();
                var logits = network.call(x);
                var score = logits.gather(1, targets.unsqueeze(1)).squeeze(1);
                var tv = (x[.., .., 1.., ..] - x[.., .., ..^1, ..]).abs().sum([1, 2, 3]) + (x[.., .., .., 1..] - x[.., .., .., ..^1]).abs().sum([1, 2, 3]);
                var loss = (-score + options.TotalVariation * tv / 28.0 + options.L2 * x.square().sum([1, 2, 3])).sum();
                loss.backward();
                optimizer.step();
            }
            using var noGrad = no_grad();
            var final = w.sigmoid();
            var p = functional.softmax(network.call(final), 1).gather(1, targets.unsqueeze(1)).squeeze(1).to_type(ScalarType.Float64).data<double>().ToArray();
            var pixels = final.reshape(classCount, 784).data<float>().ToArray();
            return (Enumerable.Range(0, classCount).Select(c => pixels.AsSpan(c * 784, 784).ToArray()).ToArray(), p);
        }
        finally
        {
            foreach (var (parameter, required) in frozen) parameter.requires_grad_(required);
        }
    }

    /// <summary>Mean SSIM (7x7 uniform windows, as scikit-image's default; data range 1) of one image against each of a set.</summary>
    public static Tensor Ssim(Tensor image, Tensor others)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(others);
        const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
        var x = image.reshape(1, 1, 28, 28).expand(others.shape[0], 1, 28, 28);
        var y = others.reshape(-1, 1, 28, 28);
        Tensor Mean(Tensor t) => functional.avg_pool2d(t, 7, 1);
        var mx = Mean(x);
        var my = Mean(y);
        var correction = 49.0 / 48.0; // sample covariance, as scikit-image uses
        var vx = (Mean(x * x) - mx * mx) * correction;
        var vy = (Mean(y * y) - my * my) * correction;
        var cxy = (Mean(x * y) - mx * my) * correction;
        var map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        return map.mean([1, 2, 3]);
    }

    /// <summary>The nearest image by L2 (its distance and the image) and the best SSIM in the sample.</summary>
    private static (double L2, double Ssim, float[] Image) Nearest(float[] reconstruction, Tensor sample)
    {
        var x = tensor(reconstruction).reshape(1, 784);
        var distances = (sample.reshape(-1, 784) - x).square().sum(1).sqrt();
        var nearest = distances.argmin().item<long>();
        var ssim = Ssim(x, sample).max().item<float>();
        return (distances[nearest].item<float>(), ssim, sample.reshape(-1, 784)[nearest].data<float>().ToArray());
    }

    private static int Count(LabeledImages images, int label) => images.Labels.Count(l => l == label);

    private static Tensor Sample(LabeledImages images, int label, int count, SeededRandom random)
    {
        var indices = Enumerable.Range(0, images.Count).Where(i => images.Labels[i] == label).ToArray();
        random.Shuffle(indices);
        return images.Select(indices[..count]).ImagesTensor().reshape(count, 784);
    }
}
