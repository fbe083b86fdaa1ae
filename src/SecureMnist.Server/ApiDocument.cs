using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace SecureMnist.Server;

/// <summary>
/// The OpenAPI document of every route (<c>/openapi/v1.json</c>, from Microsoft.AspNetCore.OpenApi), with the two ways to present an
/// API key as security schemes, and each keyed operation marked with them and the scope it needs.
/// </summary>
public static class ApiDocument
{
    public const string Route = "/openapi/{documentName}.json";
    public const string BearerScheme = "bearer";
    public const string HeaderScheme = "apiKey";

    public static IServiceCollection AddApiDocument(this IServiceCollection services) => services.AddOpenApi("v1", options =>
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "SecureMnist",
                Version = "v1",
                Description = "A hardened MNIST classifier: /v1 (its own JSON and images) and /v2 (the Open Inference Protocol). Keyed routes take an API key as a bearer token or in X-Api-Key.",
            };
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http, Scheme = "bearer", Description = "Authorization: Bearer <API key> (./securemnist api-keys add)",
            };
            document.Components.SecuritySchemes[HeaderScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-Api-Key", Description = "X-Api-Key: <API key>",
            };
            return Task.CompletedTask;
        });
        options.AddOperationTransformer((operation, context, _) =>
        {
            var scopes = context.Description.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>().Select(a => a.Policy).OfType<string>().Distinct().ToList();
            if (scopes.Count == 0) return Task.CompletedTask;
            operation.Security ??= [];
            foreach (var scheme in new[] { BearerScheme, HeaderScheme })
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, context.Document)] = scopes });
            operation.Description = $"Needs an API key with the scope {string.Join(", ", scopes)}. {operation.Description}".Trim();
            return Task.CompletedTask;
        });
    });

    public static IEndpointRouteBuilder MapApiDocument(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi(Route);
        return app;
    }
}
