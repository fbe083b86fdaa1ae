# The service as a container: ./securemnist serve, run as a non-root user. docs/DEPLOYMENT.md describes the topology;
# compose.yaml runs three replicas with Redis behind a balancer. The test suite does not build this image.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
# The build patches TorchSharp's native library only where the base image's libstdc++ needs it (build/TorchSharpNativeFix.targets).
RUN dotnet publish src/SecureMnist.Cli/SecureMnist.Cli.csproj -c Release -o /app --nologo

FROM mcr.microsoft.com/dotnet/aspnet:10.0
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/securemnist
COPY --from=build /app /app
# Models, keys and data are mounted, never baked in: the image holds no secret and no weights.
VOLUME ["/srv/securemnist/models", "/srv/securemnist/keys", "/srv/securemnist/data", "/srv/securemnist/runs"]
USER app
# Probes: GET /healthz (live) and /readyz (ready) on 8080; metrics on 9464.
EXPOSE 8080 9464
ENTRYPOINT ["dotnet", "/app/SecureMnist.Cli.dll"]
CMD ["serve", "--model", "models/baseline", "--urls", "http://0.0.0.0:8080", "--metrics-urls", "http://0.0.0.0:9464/metrics"]
