// The demo served WITHOUT the COOP/COEP headers: no SharedArrayBuffer, so the kernels fall back to
// one thread, the page says why, and computing still works.
// Run: `pnpm --filter @wasmformer/demo e2e` (after `pnpm build`).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launch, openPage, screenshot, startPreview } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startPreview({ isolated: false });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("not cross-origin isolated: one thread, the reason shown, the pages still compute", async () => {
  const { page, errors, context } = await openPage(browser, `${server.url}#text`);
  await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), false);
  assert.match(await page.getAttribute("#backend", "data-backend"), /^wasm-/);
  assert.equal(await page.getAttribute("#backend", "data-threads"), "1");
  const text = await page.textContent("#backend");
  assert.match(text, /1 thread \(the page is not cross-origin isolated/);
  assert.doesNotMatch(text, /· cross-origin isolated/);
  // the kernels still run (on the worker's own thread) and give the right product
  const stats = await page.evaluate(() => window.__threadStats());
  assert.equal(stats.threads, 1);
  assert.equal(stats.splitCalls, 0);
  assert.ok(Math.abs(stats.probe[0] - stats.probe[1]) < 1e-3, `probe ${stats.probe}`);
  // and a page computes: the text preprocessing of the lecture examples
  await page.waitForSelector('#page-text .status[data-state="done"]', { timeout: 30_000 });
  await screenshot(page, "no-isolation");
  assert.deepEqual(errors, []);
  await context.close();
});
