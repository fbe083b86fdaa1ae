namespace SecureMnist.Cli;

/// <summary>
/// What the process's exit code tells a script. Every verb but scan: 0 success, 1 a check the verb performs failed (a tampered package
/// in verify, a failed robustness check, an audit log that does not verify), 2 a usage or input error (a bad flag, a missing or refused
/// file, a signature that does not verify when loading), 3 a result that is incomplete (poison-bench before every cell ran), 130
/// interrupted. scan follows ModelScan: 0 clean (or every finding below --fail-on), 1 issues found, 2 scan error, 3 nothing it supports, 4 usage error.
/// </summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int CheckFailed = 1;
    public const int InputError = 2;
    public const int Incomplete = 3;
    public const int Interrupted = 130;

    public const int ScanIssuesFound = 1;
    public const int ScanError = 2;
    public const int ScanNothingSupported = 3;
    public const int ScanUsageError = 4;

    /// <summary>The exit code of a usage error (a flag that does not parse) for a verb.</summary>
    public static int Usage(string verb) => verb == "scan" ? ScanUsageError : InputError;
}
