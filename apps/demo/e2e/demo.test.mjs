// End-to-end tests of the demo in headless Chromium: each page computes in the worker, the results
// are checked, and no main-thread task longer than 50 ms may occur while the worker computes.
// Run: `pnpm --filter @wasmformer/demo e2e` (after `pnpm build`). Screenshots go to e2e-out/.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launch, measure, openPage, screenshot, startPreview } from "./harness.mjs";

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

/** Assert that no main-thread long task overlapped the measured compute. */
function assertResponsive(m, what) {
  const worst = Math.max(0, ...m.longTasks.map((t) => t.duration));
  assert.equal(
    m.longTasks.length,
    0,
    `${what}: ${m.longTasks.length} main-thread task(s) over 50 ms during compute (worst ${worst.toFixed(0)} ms)`,
  );
}

const cells = (page, sel) =>
  page.$$eval(`${sel} tbody tr`, (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
const numbers = (rows) => rows.map((r) => r.slice(1).map(Number));
const close = (a, b, tol = 1e-4) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

async function waitDone(page, statusSel, timeout = 60_000) {
  await page.waitForSelector(`${statusSel}[data-state="done"], ${statusSel}[data-state="error"]`, { timeout });
  const state = await page.getAttribute(statusSel, "data-state");
  if (state !== "done") {
    const msg = await page.textContent("#page .error").catch(() => "");
    assert.fail(`page reported an error: ${msg}`);
  }
}

describe("demo", () => {
  test("shell: worker starts with a wasm backend, cross-origin isolated", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#text`);
    await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
    const backend = await page.getAttribute("#backend", "data-backend");
    assert.match(backend, /^wasm-/);
    assert.match(await page.textContent("#backend"), /cross-origin isolated/);
    for (const id of ["text", "embeddings", "attention", "vit", "generate", "vlm"]) {
      await page.click(`#tabs button[data-page="${id}"]`);
      await page.waitForSelector(`#page-${id}:not([hidden])`);
    }
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("text preprocessing: lecture examples, editing, errors in the page", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#text`);
    await waitDone(page, "#page-text .status");
    // word_index of the lecture texts (Keras: ranked by count, ties in first-seen order)
    const wi = await cells(page, "table.word-index");
    assert.deepEqual(
      wi.map((r) => [r[0], Number(r[1])]),
      [
        ["i", 1],
        ["love", 2],
        ["algeria", 3],
        ["machine", 4],
        ["learning", 5],
        ["artificial", 6],
        ["intelligence", 7],
        ["ai", 8],
      ],
    );
    const seqs = await cells(page, "table.sequences");
    assert.equal(seqs[0][1], "[3, 2, 8]");
    const dec = await cells(page, "table.decoded");
    assert.equal(dec[0][1], "algeria machine intelligence love ai i algeria");
    // texts_to_matrix over the window sentences; expected values from Keras (shared fixture tokenizer-lecture_matrix)
    assert.deepEqual(numbers(await cells(page, "table.matrix-binary"))[0], [0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(numbers(await cells(page, "table.matrix-count"))[0], [0, 1, 2, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
    const freq = numbers(await cells(page, "table.matrix-freq"));
    close(freq[2][1], 1 / 7);
    const tfidf = numbers(await cells(page, "table.matrix-tfidf"));
    [0, 0.5596157879354227, 1.5514150692459345, 0, 0, 0.916290731874155, 0.916290731874155, 0, 0, 0, 0, 0, 0].forEach(
      (v, j) => {
        close(tfidf[0][j], v);
      },
    );
    assert.deepEqual(numbers(await cells(page, "table.padded-pre")), [
      [1, 2, 3, 4],
      [0, 1, 2, 3],
      [0, 0, 0, 1],
    ]);
    assert.deepEqual(numbers(await cells(page, "table.padded-post")), [
      [1, 2, 3, 4],
      [1, 2, 3, 0],
      [1, 0, 0, 0],
    ]);
    await screenshot(page, "text");

    // edit: an OOV token shifts the indices; a recompute must keep the main thread free
    await page.fill("#oov", "<OOV>");
    await page.fill("#encode-texts", "Algeria love AI and more");
    await page.fill("#maxlen", "2");
    await page.selectOption("#truncating", "post");
    const m = await measure(page, async () => {
      await page.click("#text-run");
      await waitDone(page, "#page-text .status");
    });
    assertResponsive(m, "text preprocessing");
    assert.equal((await cells(page, "table.sequences"))[0][1], "[4, 3, 9, 1, 1]");
    assert.deepEqual(numbers(await cells(page, "table.padded-pre")), [
      [1, 2],
      [1, 2],
      [0, 1],
    ]);

    // a malformed input shows an error in the page
    await page.fill("#decode-seqs", "3 x 4");
    await page.click("#text-run");
    await page.waitForSelector("#text-out .error");
    assert.match(await page.textContent("#text-out .error"), /"x" is not an integer/);
    // an invalid option is reported in the page as well
    await page.fill("#decode-seqs", "1 2");
    await page.fill("#maxlen", "-1");
    await page.click("#text-run");
    await page.waitForSelector("#text-out .error");
    assert.match(await page.textContent("#text-out .error"), /maxlen/);
    assert.deepEqual(
      errors.filter((e) => !/is not an integer|maxlen/.test(e)),
      [],
    );
    await context.close();
  });
});
