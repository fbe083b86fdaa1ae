using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SecureMnist.Audit;

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

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = Presented(Request);
        if (presented is null) return Task.FromResult(AuthenticateResult.NoResult());
        var entry = state.Keys.Authenticate(presented);
        if (entry is null) return Task.FromResult(AuthenticateResult.Fail("unknown API key"));
        var claims = new List<Claim>
        {
            new(KeyIdClaim, entry.Id),
            new(LabelOnlyClaim, entry.LabelOnly ? "true" : "false"),
            new(RateClaim, entry.RequestsPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
        claims.AddRange(entry.Scopes.Select(s => new Claim(ScopeClaim, s)));
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
        const string detail = "this API key does not have the scope this endpoint needs";
        Decisions.Refused(Context, detail);
        await Problems.Write(Context, StatusCodes.Status403Forbidden, "Forbidden", detail).ConfigureAwait(false);
    }
}
