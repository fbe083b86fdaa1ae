using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SecureMnist.Audit;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>
/// API-key authentication: <c>Authorization: Bearer smk_...</c> or <c>X-Api-Key: smk_...</c>, looked up in the key
/// store in constant time. Refusals are problem+json; the audit trail records them.
/// </summary>
public sealed class ApiKeyAuthentication(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ServiceState state)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string KeyIdClaim = "key_id";
    public const string ScopeClaim = "scope";
    public const string LabelOnlyClaim = "label_only";
    public const string RateClaim = "requests_per_minute";
    /// <summary>Present (with the monitor's reason) when the key is blocked for suspected model extraction.</summary>
    public const string ExtractionBlockedClaim = "extraction_blocked";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = Presented(Request);
        if (presented is null) return Task.FromResult(AuthenticateResult.NoResult());
        var entry = state.Keys.Authenticate(presented);
        if (entry is null) return Task.FromResult(AuthenticateResult.Fail("unknown API key"));
        // A key the extraction monitor flagged loses its scores (label-only) or its predict scope (block), as configured.
        var standing = state.Extraction?.Status(entry.Id);
        var action = standing is { Flagged: true } ? state.Options.Extraction.Action : ExtractionAction.Off;
        var claims = new List<Claim>
        {
            new(KeyIdClaim, entry.Id),
            new(LabelOnlyClaim, entry.LabelOnly || action == ExtractionAction.LabelOnly ? "true" : "false"),
            new(RateClaim, entry.RequestsPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
        claims.AddRange(entry.Scopes.Where(s => action != ExtractionAction.Block || s != ApiScopes.Predict).Select(s => new Claim(ScopeClaim, s)));
        if (action == ExtractionAction.Block) claims.Add(new Claim(ExtractionBlockedClaim, standing!.Reason ?? "flagged"));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
    }

    private static string? Presented(HttpRequest request)
    {
        if (request.Headers.TryGetValue("X-Api-Key", out var header) && header.Count == 1) return header[0];
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : null;
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        var detail = Presented(Request) is null ? "an API key is required (Authorization: Bearer <key> or X-Api-Key)" : "the API key is not valid";
        Decisions.Refused(Context, detail);
        await Problems.Write(Context, StatusCodes.Status401Unauthorized, "Unauthorized", detail).ConfigureAwait(false);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var blocked = Context.User.FindFirst(ExtractionBlockedClaim)?.Value;
        var detail = blocked is null ? "this API key does not have the scope this endpoint needs"
            : $"this API key is blocked: model extraction suspected ({blocked}). An administrator can clear it: ./securemnist api-keys clear-flag --id {Context.User.FindFirst(KeyIdClaim)?.Value}, then restart the service";
        Decisions.Refused(Context, detail);
        await Problems.Write(Context, StatusCodes.Status403Forbidden, "Forbidden", detail).ConfigureAwait(false);
    }
}
