using TorchSharp;
using static TorchSharp.torch;

namespace SecureMnist.Tests;

public sealed class NativeLibraryTests
{
    [Fact]
    public void Libtorch_loads_and_computes()
    {
        using var a = ones(3, 4);
        using var b = ones(4, 2);
        using var product = a.matmul(b);
        Assert.Equal(new long[] { 3, 2 }, product.shape);
        Assert.Equal(4f, product[0, 0].item<float>());
    }

    [Fact]
    public void Autograd_works_through_the_native_library()
    {
        using var x = tensor(new[] { 1f, 2f, 3f }).requires_grad_();
        using var y = (x * x).sum();
        y.backward();
        Assert.Equal(new[] { 2f, 4f, 6f }, x.grad!.data<float>().ToArray());
    }
}
