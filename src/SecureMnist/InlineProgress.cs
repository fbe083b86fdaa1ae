namespace SecureMnist;

/// <summary>Reports on the caller's thread, unlike Progress&lt;T&gt;, so messages arrive in order.</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
