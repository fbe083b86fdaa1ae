using System.Net;
using Markdig;
using Markdig.Extensions.Tables;
using Markdig.Renderers;
using Markdig.Renderers.Html;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;

namespace SecureMnist.Reporting;

/// <summary>
/// A Markdown report rendered to one self-contained HTML page with Markdig: raw HTML in the source is shown as text, images are
/// inlined as data URIs (the page's CSP loads nothing else), tables get the id of the section they open, and status words are
/// coloured by meaning: a pass green, a partial amber, a miss red, and "not measured" or "not run" grey, never the colour of a pass.
/// </summary>
public static class ReportHtml
{
    private static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder().UsePipeTables().DisableHtml().Build();

    private const string Style =
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}" +
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}" +
        "code{background:#f6f6f6;padding:0 3px}h3.threat{border-left:4px solid #36c;padding-left:.5em;margin-top:1.5em}" +
        ".ok{color:#070;font-weight:600}.partly{color:#a60;font-weight:600}.missed{color:#b00;font-weight:600}.na{color:#777;font-style:italic}" +
        "#scorecard td:nth-child(2){white-space:nowrap}.charts img{width:32%;min-width:280px;vertical-align:top}";

    /// <summary>Renders <paramref name="markdown"/>; image paths are relative to <paramref name="directory"/>.</summary>
    public static string Render(string markdown, string directory, string title)
    {
        ArgumentNullException.ThrowIfNull(markdown);
        ArgumentNullException.ThrowIfNull(directory);
        var document = Markdig.Markdown.Parse(markdown, Pipeline);
        string? section = null;
        foreach (var block in document.Descendants<Block>().ToList())
        {
            switch (block)
            {
                case HeadingBlock heading:
                    var text = PlainText(heading.Inline);
                    if (heading.Level == 2) section = text;
                    if (heading.Level == 3 && section?.StartsWith("Threats", StringComparison.Ordinal) == true)
                    {
                        // The threat's own id (S1, T2, ...) is the anchor the scorecard links to.
                        var attributes = heading.GetAttributes();
                        attributes.Id = text.Split(' ')[0].ToLowerInvariant();
                        attributes.AddClass("threat");
                    }
                    break;
                case Table table:
                    var id = TableId(section, document, table);
                    if (id is not null && !document.Descendants<Table>().TakeWhile(t => t != table).Any(t => t.GetAttributes().Id == id)) table.GetAttributes().Id = id;
                    foreach (var cell in table.Descendants<TableCell>())
                        if (StatusClass(PlainText(cell.Descendants<ParagraphBlock>().FirstOrDefault()?.Inline)) is { } status) cell.GetAttributes().AddClass(status);
                    break;
                case ParagraphBlock paragraph when paragraph.Inline is { } inline:
                    var images = inline.Descendants<LinkInline>().Where(l => l.IsImage).ToList();
                    foreach (var image in images) Inline(image, directory);
                    if (images.Count > 1 && PreviousHeading(document, paragraph) == "Key charts") paragraph.GetAttributes().AddClass("charts");
                    break;
            }
        }
        using var writer = new StringWriter();
        var renderer = new HtmlRenderer(writer);
        Pipeline.Setup(renderer);
        renderer.Render(document);
        return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + WebUtility.HtmlEncode(title) + "</title>\n" +
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n" +
            "<style>" + Style + "</style></head><body>\n" + writer + "</body></html>\n";
    }

    /// <summary>The class a table cell's text earns by its meaning, or null for a plain figure.</summary>
    public static string? StatusClass(string text) => text switch
    {
        "mitigated" or "reproduced or beaten" or "all passed" => "ok",
        _ when text.StartsWith("reproduced at the seed's precision", StringComparison.Ordinal) => "ok",
        "partly mitigated" => "partly",
        "open" or "missed" => "missed",
        _ when System.Text.RegularExpressions.Regex.IsMatch(text, "^[0-9]+ failed") => "missed",
        _ when text.StartsWith("not measured", StringComparison.Ordinal) || text == "not run" => "na",
        _ => null,
    };

    /// <summary>The id of a section's first table: "Scorecard" gives "scorecard", "Summary beside the seeds" "summary".</summary>
    private static string? TableId(string? section, MarkdownDocument document, Table table)
    {
        var heading = PreviousHeading(document, table);
        return (heading ?? section) switch
        {
            "Scorecard" => "scorecard",
            "Headline figures" => "headlines",
            "Summary beside the seeds" => "summary",
            "Robustness verdicts" => "verdicts",
            "All measurements" => "measurements",
            "Stages" => "stages",
            _ => null,
        };
    }

    private static string? PreviousHeading(MarkdownDocument document, Block block)
    {
        var index = document.IndexOf(block);
        for (var i = index - 1; i >= 0; i--)
            if (document[i] is HeadingBlock heading) return PlainText(heading.Inline);
        return null;
    }

    /// <summary>Replaces an image's path with its bytes as a data URI; a missing or escaping file becomes its alt text.</summary>
    private static void Inline(LinkInline image, string directory)
    {
        var root = Path.GetFullPath(directory);
        var path = image.Url is { Length: > 0 } url && !url.Contains(':', StringComparison.Ordinal) ? Path.GetFullPath(Path.Combine(root, url)) : null;
        if (path is not null && path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) && File.Exists(path) &&
            path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            image.Url = "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes(path));
            return;
        }
        image.ReplaceBy(new LiteralInline($"[{PlainText(image)} (missing)]"));
    }

    /// <summary>The text of inline content, without markup.</summary>
    public static string PlainText(ContainerInline? inline) => inline is null ? "" : string.Concat(inline.Descendants<Inline>().Select(i => i switch
    {
        LiteralInline literal => literal.Content.ToString(),
        CodeInline code => code.Content,
        _ => "",
    }));
}
