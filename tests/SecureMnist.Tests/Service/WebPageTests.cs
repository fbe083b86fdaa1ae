using Microsoft.Playwright;

namespace SecureMnist.Tests.Service;

/// <summary>The drawing page in a real headless Chromium, against the real service.</summary>
[Collection(ServedModelCollection.Name)]
public sealed class WebPageTests(ServedModel model)
{
    private static readonly string[] ChromiumArgs =
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

    private static string Chromium() =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Chromium is not installed; ./run-tests installs it (apt-get install chromium)");

    [Fact]
    public async Task A_person_draws_a_one_and_sees_it_recognised_with_a_saliency_map()
    {
        await using var service = await RunningService.Start(model.Options());
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium(), Args = ChromiumArgs, Headless = true });
        var page = await browser.NewPageAsync();
        var consoleErrors = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") consoleErrors.Add(message.Text); };
        await page.GotoAsync(service.Client.BaseAddress!.ToString());
        await page.FillAsync("#key", model.Secrets["user"]);

        var pad = (await page.Locator("#pad").BoundingBoxAsync())!;
        await page.Mouse.MoveAsync(pad.X + 140, pad.Y + 40);
        await page.Mouse.DownAsync();
        await page.Mouse.MoveAsync(pad.X + 142, pad.Y + 240, new MouseMoveOptions { Steps = 20 });
        await page.Mouse.UpAsync();
        await page.ClickAsync("#predict");
        await Assertions.Expect(page.Locator("#decision")).Not.ToHaveTextAsync("-", new LocatorAssertionsToHaveTextOptions { Timeout = 30_000 });

        var decision = await page.TextContentAsync("#decision");
        Assert.True(decision is "accepted" or "abstained" or "flagged", $"decision '{decision}': {await page.TextContentAsync("#detail")}");
        if (decision == "accepted") Assert.Equal("1", await page.TextContentAsync("#label"));
        var saliencyPixels = await page.EvaluateAsync<int>(
            "(() => { const d = document.getElementById('saliency').getContext('2d').getImageData(0, 0, 280, 280).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()");
        Assert.True(saliencyPixels > 0, "the saliency map was not drawn");
        Assert.Empty(consoleErrors); // the CSP allowed everything the page needs

        var screenshot = Path.Combine(TestPaths.RepositoryRoot, "artifacts", "web-page.png"); // kept for a person to look at
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 5000);
        Assert.Contains(service.AuditRecords(), r => r.KeyId == "user");
    }

    [Fact]
    public async Task The_page_shows_a_clear_error_for_a_wrong_key()
    {
        await using var service = await RunningService.Start(model.Options());
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium(), Args = ChromiumArgs, Headless = true });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(service.Client.BaseAddress!.ToString());
        await page.FillAsync("#key", "smk_wrong");
        await page.ClickAsync("#predict");
        await Assertions.Expect(page.Locator("#decision")).Not.ToHaveTextAsync("-", new LocatorAssertionsToHaveTextOptions { Timeout = 30_000 });
        Assert.Equal("error", await page.TextContentAsync("#decision"));
        Assert.Contains("not valid", await page.TextContentAsync("#detail"));
    }
}
