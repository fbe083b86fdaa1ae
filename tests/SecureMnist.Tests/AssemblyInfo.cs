// libtorch's random generator and thread pool are process-wide: tests that train or attack must not interleave.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
