using SecureMnist.Privacy;
using SecureMnist.Tests.Attacks;
using static TorchSharp.torch;

namespace SecureMnist.Tests.Privacy;

public sealed class ModelInversionTests(TrainedLinearModel model) : IClassFixture<TrainedLinearModel>
{
    [Fact]
    public void Ssim_is_one_for_the_same_image_and_lower_for_another()
    {
        using var scope = NewDisposeScope();
        var images = model.Test.Take(3).ImagesTensor().reshape(3, 784);
        var ssim = ModelInversion.Ssim(images[0], images).data<float>().ToArray();
        Assert.Equal(1.0, ssim[0], 4);
        Assert.All(ssim[1..], s => Assert.InRange(s, -1.0, 0.9));
        // Symmetric, as SSIM is.
        Assert.Equal(ModelInversion.Ssim(images[1], images[2].unsqueeze(0)).item<float>(), ModelInversion.Ssim(images[2], images[1].unsqueeze(0)).item<float>(), 5);
    }

    [Fact]
    public void Each_reconstruction_is_an_image_the_model_assigns_to_its_class()
    {
        var options = new InversionOptions(Steps: 150, Reference: 20);
        var (images, probabilities) = ModelInversion.Reconstruct(model.Network, options);
        Assert.Equal(10, images.Length);
        Assert.All(images, image => Assert.All(image, p => Assert.InRange(p, 0f, 1f)));
        Assert.All(probabilities, p => Assert.True(p > 0.9, $"p {p:F3}"));
        Assert.True(model.Network.parameters().All(p => p.requires_grad), "the model's parameters are left trainable as they were");

        var report = ModelInversion.Run(model.Network, model.Test.Take(150), model.Test.Select(Enumerable.Range(150, 150).ToArray()), options);
        Assert.Equal(10, report.Classes.Count);
        Assert.All(report.Classes, c => Assert.True(c.NearestMemberL2 > 0 && c.NearestNonMemberL2 > 0));
        Assert.InRange(report.ReferencePerClass, 1, 20);
    }
}
