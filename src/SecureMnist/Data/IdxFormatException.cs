namespace SecureMnist.Data;

/// <summary>An IDX file that does not follow the format; the message says what and where.</summary>
public sealed class IdxFormatException(string message) : Exception(message);
