using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

// Sets VER_FLG_WEAK on one Vernaux entry of an ELF64 little-endian shared object, so that the
// dynamic loader treats that missing symbol version as non-fatal. Idempotent; skips hosts whose
// libstdc++ already provides the version.
public sealed class MarkGlibcxxVersionWeak : Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string Version { get; set; } = "";

    public override bool Execute()
    {
        var hostLibrary = FindHostLibstdcxx();
        if (hostLibrary is null)
        {
            Log.LogMessage(MessageImportance.Low, "No host libstdc++ found; nothing to patch.");
            return true;
        }
        if (ContainsAscii(File.ReadAllBytes(hostLibrary), Version + "\0"))
        {
            Log.LogMessage(MessageImportance.Low, $"{hostLibrary} provides {Version}; nothing to patch.");
            return true;
        }
        foreach (var item in Files)
        {
            var path = item.GetMetadata("FullPath");
            try
            {
                var bytes = File.ReadAllBytes(path);
                var outcome = MarkWeak(bytes, Version);
                if (outcome == "patched")
                {
                    // Write a new file and rename it over the old one: a hard link into the
                    // package cache (if the copy made one) is replaced, never modified.
                    var temp = path + ".weak-tmp";
                    File.WriteAllBytes(temp, bytes);
                    File.Delete(path);
                    File.Move(temp, path);
                    Log.LogMessage(MessageImportance.High, $"Marked {Version} weak in {path} (host libstdc++ lacks it).");
                }
                else
                {
                    Log.LogMessage(MessageImportance.Low, $"{path}: {outcome}");
                }
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException)
            {
                Log.LogError($"Could not patch {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static string FindHostLibstdcxx()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static bool ContainsAscii(byte[] haystack, string needle)
    {
        var pattern = Encoding.ASCII.GetBytes(needle);
        for (var start = 0; start <= haystack.Length - pattern.Length; start++)
        {
            var matched = 0;
            while (matched < pattern.Length && haystack[start + matched] == pattern[matched]) matched++;
            if (matched == pattern.Length) return true;
        }
        return false;
    }

    // Returns "patched", "already weak" or "version not required".
    internal static string MarkWeak(byte[] elf, string version)
    {
        var span = elf;
        if (span.Length < 64 || span[0] != 0x7f || span[1] != (byte)'E' || span[2] != (byte)'L' || span[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (span[4] != 2 || span[5] != 1)
            throw new InvalidDataException("only ELF64 little-endian is supported");

        var sectionHeaderOffset = checked((int)BitConverter.ToUInt64(span, 0x28));
        var sectionHeaderSize = BitConverter.ToUInt16(span, 0x3A);
        var sectionCount = BitConverter.ToUInt16(span, 0x3C);
        if (sectionHeaderSize < 64 || checked(sectionHeaderOffset + sectionHeaderSize * sectionCount) > span.Length)
            throw new InvalidDataException("section header table lies outside the file");

        for (var index = 0; index < sectionCount; index++)
        {
            var header = sectionHeaderOffset + index * sectionHeaderSize;
            if (BitConverter.ToUInt32(span, header + 4) != ShtGnuVerneed) continue;

            var offset = checked((int)BitConverter.ToUInt64(span, header + 24));
            var stringTableIndex = (int)BitConverter.ToUInt32(span, header + 40);
            var entryCount = (int)BitConverter.ToUInt32(span, header + 44);
            var stringHeader = sectionHeaderOffset + stringTableIndex * sectionHeaderSize;
            var stringTable = checked((int)BitConverter.ToUInt64(span, stringHeader + 24));

            var need = offset;
            for (var n = 0; n < entryCount; n++)
            {
                var auxCount = BitConverter.ToUInt16(span, need + 2);
                var aux = need + (int)BitConverter.ToUInt32(span, need + 8);
                for (var a = 0; a < auxCount; a++)
                {
                    var name = ReadCString(span, stringTable + (int)BitConverter.ToUInt32(span, aux + 8));
                    if (name == version)
                    {
                        var flags = BitConverter.ToUInt16(span, aux + 4);
                        if ((flags & VerFlagWeak) != 0) return "already weak";
                        var patched = BitConverter.GetBytes((ushort)(flags | VerFlagWeak));
                        span[aux + 4] = patched[0];
                        span[aux + 5] = patched[1];
                        return "patched";
                    }
                    aux += (int)BitConverter.ToUInt32(span, aux + 12);
                }
                need += (int)BitConverter.ToUInt32(span, need + 12);
            }
        }
        return "version not required";
    }

    private static string ReadCString(byte[] span, int start)
    {
        var end = Array.IndexOf(span, (byte)0, start);
        if (end < 0) throw new InvalidDataException("unterminated string in .dynstr");
        return Encoding.ASCII.GetString(span, start, end - start);
    }
}
