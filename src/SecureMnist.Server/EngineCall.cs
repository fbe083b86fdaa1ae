using Microsoft.AspNetCore.Http;
using SecureMnist.Serving;

namespace SecureMnist.Server;

/// <summary>
/// The model part of a request, with the engine's two refusals mapped once for every route: a full queue is 503 with
/// <c>Retry-After: 1</c>, and a request whose time ran out is 504. Each route writes them in its own error shape.
/// </summary>
public static class EngineCall
{
    /// <param name="refuse">Writes a refusal in the route's shape: status, title, detail.</param>
    public static async Task<TResult> Run<TResult>(HttpContext context, ServiceState state, Func<Task<TResult>> work, Func<int, string, string, TResult> refuse)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(work);
        ArgumentNullException.ThrowIfNull(refuse);
        try
        {
            return await work().ConfigureAwait(false);
        }
        catch (InferenceQueueFullException e)
        {
            context.Response.Headers.RetryAfter = "1";
            return refuse(StatusCodes.Status503ServiceUnavailable, "Busy", e.Message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return refuse(StatusCodes.Status504GatewayTimeout, "Timed out", $"no decision within {state.Options.RequestTimeoutSeconds:0.###} s");
        }
    }
}
