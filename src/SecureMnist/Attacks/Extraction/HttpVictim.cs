using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace SecureMnist.Attacks.Extraction;

/// <summary>
/// A SecureMnist service as the victim, over HTTP with an API key: batches of images to <c>/v1/predict/batch</c>. When the service
/// answers 429 the client waits as <c>Retry-After</c> says and sends the same batch again, as an attacker within the key's quota must;
/// the waiting is part of the attack's wall time. With a <see cref="QueryPacer"/> (the attacker knows its quota), batches are cut to the
/// quota's burst and each is sent when the quota holds it, so 429s become rare.
/// </summary>
public sealed class HttpVictim(HttpClient client, string apiKey, bool scores, QueryPacer? pacer = null) : IVictim
{
    public bool Scores => scores;

    /// <summary>Requests refused with 429 and retried.</summary>
    public int RateLimited { get; private set; }

    /// <summary>Seconds spent waiting out 429s.</summary>
    public double WaitedSeconds { get; private set; }

    /// <summary>The pacer, when the attacker paces itself to its quota.</summary>
    public QueryPacer? Pacer => pacer;

    public async Task<IReadOnlyList<VictimAnswer>> QueryAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (pacer is null) return await SendAsync(images, cancellationToken).ConfigureAwait(false);
        var answers = new List<VictimAnswer>(images.Count);
        foreach (var chunk in images.Chunk(pacer.Burst))
        {
            var wait = pacer.Reserve(chunk.Length);
            if (wait > TimeSpan.Zero) await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            answers.AddRange(await SendAsync(chunk, cancellationToken).ConfigureAwait(false));
        }
        return answers;
    }

    private async Task<IReadOnlyList<VictimAnswer>> SendAsync(IReadOnlyList<float[]> images, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new { items = images.Select(pixels => new { pixels }) });
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict/batch") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                RateLimited++;
                var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
                // Retry-After is whole seconds; a pacer knows when exactly the quota holds this request again.
                if (pacer is not null && images.Count <= pacer.Burst) wait = pacer.Refused(images.Count);
                WaitedSeconds += wait.TotalSeconds;
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (response.StatusCode == HttpStatusCode.RequestEntityTooLarge && images.Count > 1)
            {
                // The key's quota cannot hold this many images at once: halve the batch, as an attacker would.
                var half = images.Count / 2;
                var first = await SendAsync(images.Take(half).ToList(), cancellationToken).ConfigureAwait(false);
                var second = await SendAsync(images.Skip(half).ToList(), cancellationToken).ConfigureAwait(false);
                return [.. first, .. second];
            }
            if (!response.IsSuccessStatusCode) throw new HttpRequestException($"the victim answered {(int)response.StatusCode}: {text[..Math.Min(text.Length, 300)]}");
            using var document = JsonDocument.Parse(text);
            var answers = new List<VictimAnswer>(images.Count);
            foreach (var item in document.RootElement.GetProperty("items").EnumerateArray())
            {
                int? label = item.TryGetProperty("label", out var l) && l.ValueKind == JsonValueKind.Number ? l.GetInt32() : null;
                float[]? probabilities = item.TryGetProperty("probabilities", out var p) && p.ValueKind == JsonValueKind.Array ? [.. p.EnumerateArray().Select(v => v.GetSingle())] : null;
                // An abstention withholds the label but, with scores access, the probabilities still say what the model thinks.
                if (label is null && probabilities is { Length: 10 }) label = Array.IndexOf(probabilities, probabilities.Max());
                answers.Add(new VictimAnswer(label, probabilities));
            }
            if (answers.Count != images.Count) throw new HttpRequestException($"the victim answered {answers.Count} items for {images.Count} queries");
            return answers;
        }
    }
}
