using System.Runtime.InteropServices;

namespace SecureMnist.Runtime;

/// <summary>Process-wide settings for libtorch on this CPU, applied once at start-up by the CLI.</summary>
public static class TorchRuntime
{
    private const int MallocTrimThreshold = -1;
    private const int MallocTopPad = -2;
    private const int MallocMmapMax = -4;

    /// <summary>
    /// Sets libtorch's thread count and keeps freed heap memory in the process: without it glibc returns the
    /// large activation buffers to the kernel after every batch and page-faults them back in on the next,
    /// which measured 2-4x slower element-wise ops and convolutions on batches of 500 MNIST images.
    /// </summary>
    public static void Configure(int threads)
    {
        if (threads > 0) TorchSharp.torch.set_num_threads(threads);
        KeepFreedMemory(true);
    }

    /// <summary>
    /// libtorch threads for the inference service: one core fewer than the host has (at least one), so Kestrel,
    /// the micro-batcher and the audit writer are never queued behind a forward pass. On this 2-core machine one
    /// libtorch thread served more predictions per second, with a lower p99, than two (see `bench serve`).
    /// </summary>
    public static int ServiceThreads(int processorCount) => Math.Max(1, processorCount - 1);

    /// <summary>Turns the allocator setting on, or back to glibc's defaults (to measure what it is worth).</summary>
    public static void KeepFreedMemory(bool keep)
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                _ = mallopt(MallocTrimThreshold, keep ? int.MaxValue : 128 * 1024);
                _ = mallopt(MallocTopPad, keep ? 512 << 20 : 0);
                // Setting the trim threshold also freezes glibc's mmap threshold at 128 KiB, so every larger tensor would be a fresh
                // mmap, page-faulted in and unmapped again on every step. Serving large blocks from the retained heap instead measured
                // 3.7x faster DP-SGD steps (1,176 -> 4,379 images/s, one thread; `train --dp --epochs 1`).
                _ = mallopt(MallocMmapMax, keep ? 0 : 65536);
            }
            catch (DllNotFoundException)
            {
                // Not glibc (e.g. musl): keep the allocator's defaults.
            }
            catch (EntryPointNotFoundException)
            {
            }
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int mallopt(int parameter, int value);
}
