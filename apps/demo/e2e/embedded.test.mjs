// End-to-end tests of the demo on the models it opens on (`@wasmformer/models`, served with the
// app): each page is driven in headless Chromium and its outcome checked — a sample "7" is
// classified 7, a drawn digit is classified, the Train page's loss falls and it stops and resumes,
// a written date is converted to ISO, the VLM names the digit, the LM writes words — with no
// main-thread task over 50 ms while the worker computes. Also measures "open the demo → first
// prediction of the drawing canvas" (written to e2e-out/first-prediction.json, reported in the README).
// Run: `pnpm --filter @wasmformer/demo e2e` (after `pnpm build`).
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { launch, measure, openPage, outDir, screenshot, startPreview } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startPreview();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function assertResponsive(m, what) {
  const worst = Math.max(0, ...m.longTasks.map((t) => t.duration));
  assert.equal(
    m.longTasks.length,
    0,
    `${what}: ${m.longTasks.length} main-thread task(s) over 50 ms during compute (worst ${worst.toFixed(0)} ms)`,
  );
}

async function waitState(page, sel, timeout = 60_000) {
  await page.waitForSelector(`${sel}[data-state="done"], ${sel}[data-state="error"]`, { timeout });
  const state = await page.getAttribute(sel, "data-state");
  if (state !== "done") {
    const msg = await page.$$eval("#page .error", (els) => els.map((e) => e.textContent).join(" | "));
    assert.fail(`${sel}: the page reported an error: ${msg}`);
  }
}

/**
 * Click a button from the page's own script: inside a measured window, Playwright's actionability
 * checks (scrolling, hit-target tests) would otherwise count as the page's main-thread work.
 */
const press = (page, sel) => page.$eval(sel, (b) => b.click());

/** The prediction shown after the next completed classification of the pad. */
async function nextPrediction(page, act) {
  const before = await page.$eval("#vit-digit-status", (e) => e.dataset.runs ?? "0");
  await act();
  await page.waitForFunction(
    (n) => {
      const s = document.querySelector("#vit-digit-status");
      return s.dataset.runs !== n && s.dataset.state !== "running";
    },
    before,
    { timeout: 30_000 },
  );
  await waitState(page, "#vit-digit-status");
  return page.getAttribute("#vit-prediction", "data-label");
}

/** Draw polylines on a pad; points in pad units (0…280). */
async function draw(page, padSel, strokes) {
  const box = await page.locator(padSel).boundingBox();
  const at = ([x, y]) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];
  for (const stroke of strokes) {
    await page.mouse.move(...at(stroke[0]));
    await page.mouse.down();
    for (const p of stroke.slice(1)) await page.mouse.move(...at(p), { steps: 4 });
    await page.mouse.up();
  }
}

describe("embedded models", () => {
  test("ViT: opens on digits-vit, a sample 7 is classified 7, samples and a drawing are classified; time to first prediction", async () => {
    // cold opens (a new browser context each: empty cache), no page chosen: the ViT page opens
    const times = [];
    for (let i = 0; i < 3; i++) {
      const { page, context } = await openPage(browser, server.url);
      await page.waitForSelector("#page-vit[data-first-prediction]", { timeout: 60_000 });
      times.push(Number(await page.getAttribute("#page-vit", "data-first-prediction")));
      await context.close();
    }
    const sorted = [...times].sort((a, b) => a - b);
    const report = { firstPredictionMs: times, medianMs: sorted[1], loadAverage: (await import("node:os")).loadavg() };
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "first-prediction.json"), `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `open the demo → first prediction of the drawing canvas: ${times.map((t) => t.toFixed(0)).join(", ")} ms`,
    );

    const { page, errors, context } = await openPage(browser, server.url);
    await page.waitForSelector("#page-vit[data-first-prediction]", { timeout: 60_000 });
    await waitState(page, "#vit-digit-status");
    // the page opens on a sample "7"
    assert.equal(await page.getAttribute("#vit-prediction", "data-label"), "7");
    assert.match(await page.textContent("#vit-status"), /ViT loaded: .* 10 classes/);
    // probabilities of the ten digits, CLS overlays for every head, mean distances for every layer
    assert.equal(await page.locator("#vit-probs meter").count(), 10);
    const heads = await page.locator("#vit-digit-maps figure").count();
    assert.ok(heads >= 1);
    const layers = await page.locator("table.vit-digit-distance tbody tr").count();
    assert.ok(layers >= 1);

    // every sample digit (held-out MNIST): nearly all right
    const n = await page.locator("#vit-samples button.sample").count();
    assert.equal(n, 40);
    let right = 0;
    const m = await measure(page, async () => {
      for (let i = 0; i < n; i++) {
        const b = page.locator(`#vit-samples button.sample[data-index="${i}"]`);
        const label = await b.getAttribute("data-label");
        const sel = `#vit-samples button.sample[data-index="${i}"]`;
        if ((await nextPrediction(page, () => press(page, sel))) === label) right++;
      }
    });
    assertResponsive(m, "classifying the sample digits");
    assert.ok(right >= 38, `${right}/40 sample digits classified right`);

    // a drawn "1": one vertical stroke; then a drawn "7"
    await page.click("#vit-clear");
    const one = await nextPrediction(page, () =>
      draw(page, "#vit-pad", [
        [
          [140, 40],
          [140, 240],
        ],
      ]),
    );
    assert.equal(one, "1");
    await page.click("#vit-clear");
    const seven = await nextPrediction(page, () =>
      draw(page, "#vit-pad", [
        [
          [70, 50],
          [210, 50],
          [120, 250],
        ],
      ]),
    );
    assert.equal(seven, "7");
    await screenshot(page, "embedded-vit");
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("Train: training from random weights, the loss falls, stop and resume; the ViT page uses the model", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#train`);
    await page.selectOption("#train-mode", "scratch");
    await page.fill("#train-lr", "0.003");
    await page.fill("#train-epochs", "500");
    // no shifts: a few dozen digits learnt from scratch are fitted in a few dozen steps without them
    await page.uncheck("#train-shift");
    // a digit drawn and labelled here joins the sample digits
    await draw(page, "#train-pad", [
      [
        [140, 40],
        [140, 240],
      ],
    ]);
    await page.selectOption("#train-label", "1");
    await page.click("#train-add");
    assert.equal(await page.locator("#train-mine .sample").count(), 1);

    const epochAt = (e) =>
      page.waitForFunction((k) => Number(document.querySelector("#train-status").dataset.epoch) >= k, e, {
        timeout: 120_000,
      });
    const m = await measure(page, async () => {
      await press(page, "#train-start");
      await epochAt(4);
    });
    assertResponsive(m, "training");
    await page.click("#train-stop");
    await waitState(page, "#train-status");
    assert.equal(await page.getAttribute("#train-status", "data-stopped"), "stop");
    const stoppedAt = Number(await page.getAttribute("#train-status", "data-step"));
    assert.ok(stoppedAt > 0);
    assert.match(await page.textContent("#train-start"), /Resume/);
    // stopped: no step is taken any more
    await page.waitForTimeout(500);
    assert.equal(Number(await page.getAttribute("#train-status", "data-step")), stoppedAt);

    // resume: the steps continue from where they stopped
    await page.click("#train-start");
    await page.waitForFunction((s) => Number(document.querySelector("#train-status").dataset.step) > s, stoppedAt);
    const firstAfter = Number(await page.getAttribute("#train-status", "data-step"));
    assert.ok(
      firstAfter > stoppedAt && firstAfter <= stoppedAt + 3,
      `resumed at step ${firstAfter}, stopped at ${stoppedAt}`,
    );
    await epochAt(25);
    await page.click("#train-stop");
    await waitState(page, "#train-status");
    const losses = await page.evaluate(() => window.__trainLosses ?? []);
    assert.ok(losses.length > 20, `${losses.length} losses`);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 5));
    const last = mean(losses.slice(-5));
    assert.ok(last < 0.7 * first, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
    await screenshot(page, "embedded-train");

    // the ViT page classifies with the trained model
    await page.click('#tabs button[data-page="vit"]');
    await page.waitForFunction(() => /Train page/.test(document.querySelector("#vit-model")?.textContent ?? ""));
    await waitState(page, "#vit-digit-status");
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("Seq2seq: written dates → ISO dates with the cross-attention heatmap", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#seq2seq`);
    await waitState(page, "#s2s-translate-status");
    assert.equal(await page.textContent("#s2s-output"), "1998-03-03");
    for (const [text, iso] of [
      ["3 March 1998", "1998-03-03"],
      ["july 14th, 2015", "2015-07-14"],
      ["the 21st of december 1987", "1987-12-21"],
    ]) {
      await page.fill("#s2s-input", text);
      const m = await measure(page, async () => {
        await press(page, "#s2s-run");
        await page.waitForFunction((t) => document.querySelector("#s2s-output").dataset.input === t, text);
      });
      assertResponsive(m, "translating");
      assert.equal(await page.textContent("#s2s-output"), iso, text);
    }
    assert.equal(await page.locator("#s2s-out canvas.cells").count(), 1);
    await screenshot(page, "embedded-seq2seq");
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("VLM: the mini MiniGPT-4 names the digit (or, in a build without it, the page says so)", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#vlm`);
    const res = await fetch(`${server.url}models/digits-minigpt4/config.json`);
    if (!res.headers.get("content-type")?.includes("json")) {
      // the checkpoint is not in packages/models yet: no error, a note, and the loader stays usable
      await page.waitForSelector('#vlm-status[data-embedded="absent"]', { timeout: 60_000 });
      assert.match(await page.textContent("#vlm-status"), /no embedded model/);
      assert.equal(await page.isDisabled("#vlm-load-url"), false);
      assert.deepEqual(errors, []);
      await context.close();
      return;
    }
    await waitState(page, "#vlm-status", 120_000);
    const ask = async () => {
      await press(page, "#vlm-ask");
      await waitState(page, "#vlm-answer-status", 60_000);
      return (await page.textContent("#vlm-text")).toLowerCase();
    };
    const words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    const names = (a, d) => a.includes(String(d)) || new RegExp(`\\b${words[d]}\\b`).test(a);
    // the page opens on a sample "3"
    const m = await measure(page, async () => {
      const a = await ask();
      assert.ok(names(a, 3), `answer about a 3: ${a}`);
    });
    assertResponsive(m, "VLM answer");
    let right = 0;
    for (const d of [0, 1, 2, 4, 5, 6, 7, 8, 9]) {
      await page.click(`#vlm-samples button.sample[data-label="${d}"] >> nth=0`);
      await page.waitForTimeout(200); // the pad's throttled change
      if (names(await ask(), d)) right++;
    }
    assert.ok(right >= 8, `${right}/9 digits named`);
    await screenshot(page, "embedded-vlm");
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("Text generation, attention and word vectors on the Brown models", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#generate`);
    await waitState(page, "#gpt2-status", 120_000);
    await page.fill("#gen-prompt", "The");
    await page.fill("#gen-max", "12");
    await page.fill("#gen-temp", "0");
    const m = await measure(page, async () => {
      await press(page, "#gen-run");
      await waitState(page, "#gen-status");
    });
    assertResponsive(m, "generation");
    const text = await page.textContent("#gen-text");
    assert.ok(/\b[a-z]{2,}\b.*\b[a-z]{2,}\b/i.test(text), `generated: ${text}`);

    await page.click('#tabs button[data-page="attention"]');
    await page.waitForSelector("#attn-run:not([disabled])");
    await page.click("#attn-run");
    await waitState(page, "#attn-status");
    assert.ok((await page.locator("#attn-out canvas").count()) > 0);

    await page.click('#tabs button[data-page="embeddings"]');
    await waitState(page, "#w2v-load-status");
    await page.waitForSelector("table.w2v-nn-table");
    const nn = await page.$$eval("table.w2v-nn-table tbody tr", (rows) => rows.map((r) => r.cells[0].textContent));
    assert.equal(nn.length, 8);
    assert.ok(Number(await page.getAttribute("#w2v-plot", "data-points")) >= 3);
    await screenshot(page, "embedded-brown");
    assert.deepEqual(errors, []);
    await context.close();
  });
});
