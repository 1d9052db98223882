/**
 * The report's sample browser, token view, tool-error table and training-curve controls in
 * headless Chromium (as tests/report_browser_test.ts: /usr/bin/chromium through playwright-core;
 * skipped, saying so, when it is absent). Screenshots go to /tmp/arpo_report_views_*.png.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { renderReport } from "../src/report/render.ts";
import { fullRun } from "./fixtures/report/fixture.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) console.log(`report_views_browser_test: skipped, ${CHROMIUM} is absent`);

interface State {
  plots: Record<string, { drawn: boolean; series: number; xSplits: number[] }>;
  errors: string[];
  samples: { total: number; shown: number; listed: number; view: { mode: string } | null };
  controls?: { smooth: number; x: string; log: boolean };
}

Deno.test({
  name: "report views in Chromium: sample browser, token view, tool errors, curve controls",
  ignore: !hasChromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    const dir = await Deno.makeTempDir({ prefix: "arpo-report-views-" });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
    });
    try {
      const data = fullRun();
      const file = join(dir, "r.html");
      await Deno.writeTextFile(file, renderReport(data));
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(m.text());
      });
      page.on("pageerror", (e) => problems.push(e.message));
      await page.goto(`file://${file}`);
      await page.waitForFunction(() => "__arpoReport" in window);
      const state = () =>
        page.evaluate(() => (window as unknown as { __arpoReport: State }).__arpoReport);

      // integer axes tick at whole numbers only
      let st = await state();
      for (const id of ["reward", "entropy_distance", "branches_per_question"]) {
        const splits = st.plots[id].xSplits;
        assert.ok(splits.length >= 2, `${id}: ${splits}`);
        assert.ok(splits.every((x) => Number.isInteger(x)), `${id} ticks at ${splits}`);
      }

      // the sample browser: every sample listed, the first shown
      assert.equal(st.samples.total, 9);
      assert.equal(st.samples.listed, 9);
      assert.equal(await page.locator("#sample-list button.q[data-sample]").count(), 9);
      await page.selectOption("#sample-where", "correct");
      assert.equal((await state()).samples.shown, 2, "the eval samples judged correct");
      await page.selectOption("#sample-where", "tool_error");
      assert.equal((await state()).samples.shown, 2);
      await page.selectOption("#sample-where", "timeout");
      assert.equal((await state()).samples.shown, 1);
      await page.selectOption("#sample-where", "");
      await page.fill("#sample-search", "hostile question");
      assert.equal((await state()).samples.shown, 3, "search matches the question");
      await page.fill("#sample-search", "");
      await page.selectOption("#sample-sort", "-reward");
      const first = await page.locator("#sample-list button.q[data-sample]").first().textContent();
      assert.match(first ?? "", /· reward 0(?![.\d])/, "lowest reward first");
      assert.match(await page.locator("#sample-count").textContent() ?? "", /^9 of 9 samples$/);

      // a trajectory with a failed call: the result is marked, the token view colours tokens
      await page.selectOption("#sample-where", "timeout");
      await page.locator('#sample-view button[data-mode="entropy"]').click();
      assert.equal((await state()).samples.view?.mode, "entropy");
      const toks = page.locator("#sample-view .tokens .tok");
      assert.ok((await toks.count()) > 10);
      assert.match(
        (await toks.first().getAttribute("title")) ?? "",
        /^#0 {2}H [\d.]+ {2}log p -?[\d.]+$/,
      );
      const result = page.locator("#sample-view .part-result");
      assert.equal(await result.count(), 1);
      assert.match(await result.textContent() ?? "", /tool result.*python.*timeout.*not sampled/s);
      assert.equal(await result.locator(".tok").count(), 0, "tool results are not coloured");
      await page.locator("#samples").screenshot({ path: "/tmp/arpo_report_views_samples.png" });
      await page.locator('#sample-view button[data-mode="logprob"]').click();
      assert.equal((await state()).samples.view?.mode, "logprob");

      // hostile sample text stays text
      await page.selectOption("#sample-where", "");
      await page.fill("#sample-search", "hostile");
      await page.locator("#sample-list button.q[data-sample]").nth(1).click();
      assert.equal(
        await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned),
        undefined,
      );

      // tool errors: one row per failed call
      assert.equal(await page.locator("#tool-error-table tbody tr").count(), 2);
      await page.locator("#tool-errors").screenshot({ path: "/tmp/arpo_report_views_errors.png" });

      // curve controls: smoothing adds the faint raw series; x as wall time; log y
      const before = (await state()).plots.reward.series;
      await page.locator("#ctl-smooth").fill("0.6");
      await page.locator("#ctl-smooth").dispatchEvent("input");
      st = await state();
      assert.equal(st.controls?.smooth, 0.6);
      assert.equal(st.plots.reward.series, before * 2, "smoothed + raw");
      assert.ok(st.plots.reward.drawn);
      await page.selectOption("#ctl-x", "minutes");
      st = await state();
      assert.equal(st.controls?.x, "minutes");
      // the fixture's steps take 1.6 s each: the axis runs over 0.27 minutes, not steps 1–10
      assert.ok(st.plots.reward.drawn);
      assert.ok(Math.max(...st.plots.reward.xSplits) < 1, `${st.plots.reward.xSplits}`);
      await page.check("#ctl-log");
      assert.equal((await state()).controls?.log, true);
      assert.ok((await state()).plots.loss.drawn);
      await page.locator("#training").screenshot({ path: "/tmp/arpo_report_views_training.png" });
      await page.screenshot({ path: "/tmp/arpo_report_views_top.png" });
      assert.deepEqual((await state()).errors, []);
      assert.deepEqual(problems, []);
      await page.close();
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
