using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using SecureMnist.Assessment;
using SecureMnist.Training;

namespace SecureMnist.Tests.Assessment;

/// <summary>The threat model, the report built from an assessment's results, and the stage cache.</summary>
public sealed partial class AssessmentReportTests : IDisposable
{
    private readonly string directory = TestPaths.NewScratchDirectory();

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void The_threat_model_document_is_the_one_the_code_renders()
    {
        var document = File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, "docs", "THREAT_MODEL.md"));
        Assert.True(document == AssessmentReport.ThreatModelMarkdown(),
            "docs/THREAT_MODEL.md is out of date: run ./securemnist assess --threat-model docs/THREAT_MODEL.md");
    }

    [Fact]
    public void Every_test_a_threat_cites_exists()
    {
        var assembly = typeof(AssessmentReportTests).Assembly;
        foreach (var test in ThreatModel.Threats.SelectMany(t => t.Tests))
        {
            var cut = test.LastIndexOf('.');
            var type = assembly.GetType("SecureMnist.Tests." + test[..cut]);
            Assert.True(type is not null, $"{test}: no test class {test[..cut]}");
            var method = type!.GetMethod(test[(cut + 1)..], BindingFlags.Public | BindingFlags.Instance);
            Assert.True(method is not null && method.GetCustomAttributes().Any(a => a is FactAttribute), $"{test}: no such test");
        }
    }

    [Fact]
    public void Threats_cover_stride_and_use_owasp_and_atlas_identifiers()
    {
        var categories = ThreatModel.Threats.Select(t => t.Category).ToHashSet();
        foreach (var stride in new[] { "Spoofing", "Tampering", "Repudiation", "Information disclosure", "Denial of service", "Elevation of privilege" })
            Assert.Contains(stride, categories);
        Assert.All(ThreatModel.Threats, t =>
        {
            Assert.NotEmpty(t.Owasp);
            Assert.All(t.Owasp, o => Assert.Matches(@"^ML(0[1-9]|10) ", o));
            Assert.NotEmpty(t.Atlas);
            Assert.All(t.Atlas, a => Assert.Matches(@"^AML\.T\d{4}(\.\d{3})? ", a));
            Assert.NotEmpty(t.Tests);
            Assert.NotEmpty(t.Evidence);
        });
        Assert.Equal(ThreatModel.Threats.Count, ThreatModel.Threats.Select(t => t.Id).Distinct().Count());
    }

    [Fact]
    public void Every_number_in_the_report_comes_from_the_results()
    {
        var results = Results(("defense_fgsm_rs.worst_case_accuracy", Metric.Proportion(0.2233, 300, "fgsm-rs-trained: worst case")));
        AssessmentReport.Write(results, directory);
        var json = File.ReadAllText(Path.Combine(directory, "results.json"));
        var markdown = File.ReadAllText(Path.Combine(directory, "report.md"));
        var html = File.ReadAllText(Path.Combine(directory, "report.html"));
        Assert.Contains("98.76%", markdown);
        Assert.Contains("99.39%", markdown); // the seeds' figure, quoted
        Assert.Contains("| fgsm-rs-trained | - | 22.33% (95% CI", markdown); // the verdicts table
        var strays = Numbers().Matches(markdown).Select(m => m.Value).Where(n => !json.Contains(n, StringComparison.Ordinal)).Distinct().ToList();
        Assert.True(strays.Count == 0, "numbers in report.md that results.json does not hold: " + string.Join(", ", strays));
        var visible = Regex.Replace(html, "<(style|head)[^>]*>.*?</\\1>", "", RegexOptions.Singleline); // styling is not content
        var htmlText = Regex.Replace(Regex.Replace(visible, "data:image/png;base64,[^\"]+", ""), "<[^>]+>", " ");
        strays = Numbers().Matches(htmlText).Select(m => m.Value).Where(n => !json.Contains(n, StringComparison.Ordinal)).Distinct().ToList();
        Assert.True(strays.Count == 0, "numbers in report.html that results.json does not hold: " + string.Join(", ", strays));
    }

    [Fact]
    public void Each_robust_figure_is_shown_beside_its_gradient_masking_checks()
    {
        var checks = new StageResult("robustness-checks", "fedcba9876543210", 45, DateTimeOffset.UtcNow, new Dictionary<string, Metric>
        {
            ["defense_fgsm_rs.masking_checks_failed"] = Metric.Count(2, "fgsm-rs-trained: gradient-masking checks failed of 6 run"),
            ["defense_fgsm_rs.square_accuracy"] = Metric.Proportion(0.61, 100, "fgsm-rs-trained: accuracy under Square"),
            ["defense_fgsm_rs.check_all_attacks_accuracy"] = Metric.Proportion(0.19, 100, "fgsm-rs-trained: every attack of the checks"),
            ["defense_trades.masking_checks_failed"] = Metric.Count(0, "trades-trained: gradient-masking checks failed of 6 run"),
        }, new Dictionary<string, string>(), System.Text.Json.Nodes.JsonNode.Parse("""
            { "fgsm-rs": { "checks": [ { "name": "eps-sweep", "passed": true }, { "name": "step-convergence", "passed": false },
                                       { "name": "transfer", "passed": null }, { "name": "restart-convergence", "passed": false } ] },
              "trades": { "checks": [ { "name": "eps-sweep", "passed": true } ] } }
            """));
        var baseResults = Results(("baseline.worst_case_accuracy", Metric.Proportion(0, 300, "baseline: worst case")),
            ("defense_fgsm_rs.worst_case_accuracy", Metric.Proportion(0.22, 300, "fgsm-rs-trained: worst case")),
            ("defense_trades.worst_case_accuracy", Metric.Proportion(0.91, 300, "trades-trained: worst case")));
        var results = baseResults with { Stages = [.. baseResults.Stages, checks] };

        var verdicts = RobustnessVerdict.From(results);
        Assert.Equal(["baseline", "fgsm-rs-trained", "trades-trained"], verdicts.Select(v => v.Model));
        Assert.Equal("not run", verdicts[0].Checks);
        Assert.Equal("2 failed: step-convergence, restart-convergence", verdicts[1].Checks);
        Assert.False(verdicts[1].Trusted);
        Assert.Equal("all passed", verdicts[2].Checks);
        Assert.True(verdicts[2].Trusted);

        var row = AssessmentReport.Markdown(results).Split('\n').Single(l => l.StartsWith("| fgsm-rs-trained |", StringComparison.Ordinal));
        Assert.Contains("| 22.00% (95% CI ", row);
        Assert.Contains("| 2 failed: step-convergence, restart-convergence | - | 19.00% (95% CI ", row);
        Assert.Contains("| 61.00% (95% CI ", row);
        Assert.Contains("<td class=\"missed\">2 failed: step-convergence, restart-convergence</td>", AssessmentReport.Html(results, directory));
    }

    [Fact]
    public void The_report_opens_with_a_scorecard_whose_statuses_follow_the_profile_thresholds()
    {
        var results = Results(("service.oversized_status", Metric.Count(413, "HTTP status of an oversized body")),
            ("service.rate_limited_status", Metric.Count(429, "HTTP status over the rate")),
            ("service.admin_with_predict_key_status", Metric.Count(200, "HTTP status of admin with a predict key")),
            ("defense_trades.worst_case_accuracy", Metric.Proportion(0.93, 300, "trades-trained: worst case")),
            ("defense_trades.clean_accuracy", Metric.Percent(0.99, "trades-trained: clean")));
        var markdown = AssessmentReport.Markdown(results);
        var sections = markdown.Split('\n').Where(l => l.StartsWith("## ", StringComparison.Ordinal)).ToList();
        Assert.Equal("## Scorecard", sections[0]);
        string Row(string id) => markdown.Split('\n').First(l => l.StartsWith($"| [{id}]", StringComparison.Ordinal));
        Assert.Contains("| mitigated |", Row("D1"));
        Assert.Contains("| open |", Row("E1"));
        Assert.Contains("| 0 of 1 | admin_with_predict_key_status 200, needs == 403 |", Row("E1"));
        Assert.Contains("- missed: `service.admin_with_predict_key_status` 200, needs == 403", markdown); // the threat's own section
        Assert.Contains("| not measured |", Row("R1"));
        // Robust and clean, but its gradient-masking checks were not run: partly, and the figure shows its interval.
        Assert.Contains("| partly mitigated |", Row("S1"));
        Assert.Contains("| 2 of 3 (trades-trained) | masking_checks_failed not measured |", Row("S1"));
        Assert.Contains("- met: `defense_trades.worst_case_accuracy` 93.00% (95% CI", markdown);

        var html = AssessmentReport.Html(results, directory);
        Assert.Contains("<td class=\"ok\">mitigated</td>", html);
        Assert.Contains("<td class=\"missed\">open</td>", html);
        Assert.Contains("<td class=\"partly\">partly mitigated</td>", html);
        Assert.Contains("<td class=\"na\">not measured</td>", html);
        Assert.DoesNotContain("<td class=\"ok\">not measured", html);
        Assert.True(html.IndexOf("id=\"scorecard\"", StringComparison.Ordinal) < html.IndexOf("id=\"summary\"", StringComparison.Ordinal));
        var json = File.ReadAllText(Path.Combine(WriteTo(results), "results.json"));
        Assert.Contains("\"status\": \"partly mitigated\"", json);
    }

    [Fact]
    public void Text_from_a_run_cannot_inject_markup_or_load_anything()
    {
        var results = Results(("defense_x.worst_case_accuracy", Metric.Percent(0.5, "<script>alert(1)</script> | [link](http://example.com) ![img](http://example.com/a.png)")));
        var html = AssessmentReport.Html(results, directory);
        Assert.DoesNotContain("<script>", html);
        Assert.DoesNotContain("href=\"http://example.com", html);
        Assert.DoesNotContain("src=\"http", html);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html);
        // A picture whose file is missing is named, not loaded.
        var stage = new StageResult("poisoning", "0123456789abcdef", 1, DateTimeOffset.UtcNow, new Dictionary<string, Metric>(),
            new Dictionary<string, string> { ["backdoor_examples"] = "stages/poisoning/backdoor.png", ["escape"] = "../../etc/x.png" }, null);
        var withPictures = Results() with { Stages = [.. Results().Stages, stage] };
        html = AssessmentReport.Html(withPictures, directory);
        Assert.Contains("(missing)", html);
        Assert.DoesNotContain("<img", html);
    }

    private string WriteTo(AssessmentResults results)
    {
        AssessmentReport.Write(results, directory);
        return directory;
    }

    [Fact]
    public void A_seed_figure_missed_is_reported_as_missed()
    {
        var markdown = AssessmentReport.Markdown(Results());
        Assert.Contains("| 99.39% (seed 001) | 98.76% | missed |", markdown);
        Assert.Contains("reproduced or beaten", markdown); // FGSM drops the baseline below both seeds' figures
        Assert.Contains("not measured in the quick profile", markdown);
    }

    [Fact]
    public void Seed_figures_are_quoted_and_compared_at_the_precision_the_seeds_give_them()
    {
        static string Verdict(double ours) => AssessmentReport.Markdown(Results(("poison.attack_success_rate", Metric.Percent(ours, "backdoor success"))))
            .Split('\n').Single(l => l.StartsWith("| backdoor attack success", StringComparison.Ordinal));
        Assert.Equal("| backdoor attack success with 100 poisoned samples | 100% (seed 000) | 100.00% | reproduced or beaten |", Verdict(1.0));
        Assert.Equal("| backdoor attack success with 100 poisoned samples | 100% (seed 000) | 99.93% | reproduced at the seed's precision (100%), not beaten |", Verdict(0.9993));
        Assert.Equal("| backdoor attack success with 100 poisoned samples | 100% (seed 000) | 98.76% | missed |", Verdict(0.9876));
        var fgsm = AssessmentReport.SeedFigures.First(s => s.Metric == "defense_fgsm.fgsm_accuracy");
        Assert.Equal("97.2%", fgsm.Formatted);
        Assert.True(fgsm.ReproducedAtItsPrecisionBy(0.9715));
        Assert.False(fgsm.ReproducedAtItsPrecisionBy(0.9714));
        var attack = AssessmentReport.SeedFigures.First(s => s.Metric == "baseline.fgsm_accuracy");
        Assert.True(attack.ReproducedAtItsPrecisionBy(0.3074)); // lower is better for the attack
        Assert.False(attack.ReproducedAtItsPrecisionBy(0.3075));
    }

    [Fact]
    public void A_run_of_some_stages_takes_what_they_build_on_and_its_report_says_what_was_not_run()
    {
        Assert.Equal(["data", "poisoning", "poison-defenses"], SecurityAssessment.WithPrerequisites(["poison-defenses"]));
        Assert.Equal(["data", "baseline", "evasion", "service"], SecurityAssessment.WithPrerequisites(["service", "evasion"]));
        var error = Assert.Throws<ArgumentException>(() => SecurityAssessment.WithPrerequisites(["poisonning"]));
        Assert.Contains("unknown stage 'poisonning'; the stages are data, baseline,", error.Message);
        Assert.Throws<ArgumentException>(() => SecurityAssessment.WithPrerequisites([]));

        var partial = Results() with { SelectedStages = ["data", "baseline"] };
        var markdown = AssessmentReport.Markdown(partial);
        Assert.Contains("| 100% (seed 000) | - | not measured: its stage was not run (assess --stages) |", markdown);
        Assert.Contains("This report holds the stages baseline only", markdown);
        Assert.DoesNotContain("This report holds", AssessmentReport.Markdown(Results()));
        Assert.DoesNotContain("not measured in the quick profile", markdown);
    }

    [Fact]
    public async Task The_report_renders_in_chromium()
    {
        // Two key charts (the baseline's curve and a defended model's) and one detail picture, as an assessment's stages leave them.
        var stageDirectory = Directory.CreateDirectory(Path.Combine(directory, "stages", "evasion")).FullName;
        var files = new Dictionary<string, string>();
        foreach (var (name, accuracy) in new[] { ("baseline_curve", 0.0), ("defense_trades_curve", 0.9), ("baseline_grid", 0.5) })
        {
            var file = Path.Combine(stageDirectory, name + ".png");
            SecureMnist.Reporting.LineChart.Save(file, name, "eps", "accuracy", [new("pgd", [(0, 0.99), (0.3, accuracy)])], 0, 1, 600, 380);
            files[name] = Path.GetRelativePath(directory, file);
        }
        var pictures = new StageResult("evasion", "0123456789abcdef", 1, DateTimeOffset.UtcNow, new Dictionary<string, Metric>(), files, null);
        var results = Results() with { Stages = [.. Results().Stages, pictures] };
        AssessmentReport.Write(results, directory);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.First(File.Exists),
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"], Headless = true,
        });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") errors.Add(message.Text); };
        await page.GotoAsync(new Uri(Path.Combine(directory, "report.html")).AbsoluteUri);
        Assert.Equal(AssessmentReport.SeedFigures.Count + 1, await page.Locator("#summary tr").CountAsync());
        Assert.Equal(ThreatModel.Threats.Count, await page.Locator("h3.threat").CountAsync());
        // The scorecard opens the page: its table is the first, one row per threat, and it sits within the first screen.
        Assert.Equal("scorecard", await page.Locator("table").First.GetAttributeAsync("id"));
        Assert.Equal(ThreatModel.Threats.Count + 1, await page.Locator("#scorecard tr").CountAsync());
        await page.SetViewportSizeAsync(1280, 900);
        var box = await page.Locator("#scorecard").BoundingBoxAsync();
        Assert.True(box is { Y: < 900 }, $"the scorecard starts at y = {box?.Y}, below the first screen");
        // Unmeasured threats are grey, not green; a threat link reaches its section.
        var unmeasured = page.Locator("#scorecard td.na");
        Assert.True(await unmeasured.CountAsync() > 0);
        Assert.Equal("rgb(119, 119, 119)", await unmeasured.First.EvaluateAsync<string>("e => getComputedStyle(e).color"));
        Assert.Equal(1, await page.Locator("h3#e1.threat").CountAsync());
        Assert.Equal(2, await page.Locator("p.charts img").CountAsync());
        Assert.Equal(3 + 2, await page.Locator("img").CountAsync()); // every picture below, the key charts again at the top
        Assert.True(await page.Locator("img").EvaluateAllAsync<bool>("imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"));
        Assert.Empty(errors);
        var artifacts = Path.Combine(TestPaths.RepositoryRoot, "artifacts");
        Directory.CreateDirectory(artifacts);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "report-first-screen.png") });
        var screenshot = Path.Combine(artifacts, "report.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 10_000);
    }

    [Fact]
    public void Stages_are_cached_by_their_inputs_and_interrupted_ones_resume()
    {
        var store = new StageStore(directory);
        var first = StageStore.Fingerprint("baseline", new { epochs = 3 }, "upstream-a");
        Assert.Equal(first, StageStore.Fingerprint("baseline", new { epochs = 3 }, "upstream-a"));
        Assert.NotEqual(first, StageStore.Fingerprint("baseline", new { epochs = 4 }, "upstream-a"));
        Assert.NotEqual(first, StageStore.Fingerprint("baseline", new { epochs = 3 }, "upstream-b"));

        Assert.False(store.Begin("baseline", first));
        File.WriteAllText(Path.Combine(store.Directory("baseline"), "partial.bin"), "work in progress");
        Assert.Null(store.Finished("baseline", first));
        Assert.True(store.Begin("baseline", first)); // same inputs after an interruption: keep the partial work
        Assert.True(File.Exists(Path.Combine(store.Directory("baseline"), "partial.bin")));
        store.Complete(new StageResult("baseline", first, 1, DateTimeOffset.UtcNow, new Dictionary<string, Metric> { ["m"] = Metric.Count(1, "one") }, new Dictionary<string, string>(), null));
        Assert.NotNull(store.Finished("baseline", first));
        Assert.Null(store.Finished("baseline", StageStore.Fingerprint("baseline", new { epochs = 4 }, "upstream-a")));

        var changed = StageStore.Fingerprint("baseline", new { epochs = 4 }, "upstream-a");
        Assert.False(store.Begin("baseline", changed)); // other inputs: start clean
        Assert.False(File.Exists(Path.Combine(store.Directory("baseline"), "partial.bin")));
    }

    [Fact]
    public void A_finished_part_of_an_interrupted_stage_is_not_redone()
    {
        var store = new StageStore(directory);
        var fingerprint = StageStore.Fingerprint("adversarial-training", new { defenses = 2 });
        store.Begin("adversarial-training", fingerprint);
        var runs = 0;
        Assert.Equal(41, store.Part("adversarial-training", "fgsm", () => ++runs + 40));
        Assert.Throws<OperationCanceledException>(() => store.Part<int>("adversarial-training", "trades", () => throw new OperationCanceledException()));

        Assert.True(store.Begin("adversarial-training", fingerprint)); // the rerun after the interruption
        Assert.Equal(41, store.Part("adversarial-training", "fgsm", () => ++runs + 40));
        Assert.Equal(1, runs);
        Assert.Equal(7, store.Part("adversarial-training", "trades", () => 7)); // the interrupted part runs again

        Assert.False(store.Begin("adversarial-training", StageStore.Fingerprint("adversarial-training", new { defenses = 3 })));
        Assert.Equal(42, store.Part("adversarial-training", "fgsm", () => ++runs + 40)); // other inputs: nothing kept
    }

    private static AssessmentResults Results(params (string Key, Metric Metric)[] extra)
    {
        var metrics = new Dictionary<string, Metric>
        {
            ["baseline.clean_accuracy"] = Metric.Percent(0.9876, "baseline clean test accuracy"),
            ["baseline.fgsm_accuracy"] = Metric.Percent(0.1234, "baseline: accuracy under FGSM, eps 0.3"),
            ["baseline.pgd_accuracy"] = Metric.Percent(0.0012, "baseline: accuracy under PGD-40 (alpha 0.01, random start), eps 0.3"),
            ["defense_fgsm_rs.pgd_accuracy"] = Metric.Percent(0.7312, "fgsm-rs-trained: accuracy under PGD-40"),
            ["service.unauthenticated_status"] = Metric.Count(401, "HTTP status without an API key"),
            ["packaging.tampered_refused"] = Metric.Count(57, "single-bit changes refused by verification"),
        };
        foreach (var (key, metric) in extra) metrics[key] = metric;
        var stage = new StageResult("baseline", "0123456789abcdef", 42.5, DateTimeOffset.UtcNow, metrics, new Dictionary<string, string>(), null);
        return new AssessmentResults("quick", DateTimeOffset.UtcNow, 321.9, "0123abcd", MachineInfo.Current(2),
            new Dictionary<string, string> { ["train-images-idx3-ubyte.gz"] = "abc" }, [stage]);
    }

    [GeneratedRegex(@"\d+(\.\d+)?%?")]
    private static partial Regex Numbers();
}
