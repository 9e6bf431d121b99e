// End-to-end tests of the demo in headless Chromium: each page computes in the worker, the results
// are checked, and no main-thread task longer than 50 ms may occur while the worker computes.
// Run: `pnpm --filter @wasmformer/demo e2e` (after `pnpm build`). Screenshots go to e2e-out/.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { init, Tensor } from "@wasmformer/core";
import { testImage, writeGpt2, writeVit, writeVlm } from "./checkpoints.mjs";
import { appDir, launch, measure, openPage, screenshot, startPreview } from "./harness.mjs";

let server;
let browser;
// the GPT-2 folder is served by vite preview (loaded by URL); the ViT folder is picked as files
// (dev mode, E2E_MODE=dev, serves public/ instead of dist/)
const served = join(appDir, process.env.E2E_MODE === "dev" ? "public" : "dist", "__e2e__");
const ckpt = join(appDir, "e2e", ".checkpoints");

before(async () => {
  rmSync(served, { recursive: true, force: true });
  rmSync(ckpt, { recursive: true, force: true });
  writeGpt2(join(served, "gpt2"));
  writeVit(join(ckpt, "vit"));
  writeVlm(join(ckpt, "vlm"));
  mkdirSync(ckpt, { recursive: true });
  writeFileSync(join(ckpt, "image.png"), testImage(32, 32).png);
  writeFileSync(join(ckpt, "not-an-image.png"), "hello");
  await init();
  server = await startPreview();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(served, { recursive: true, force: true });
  if (process.env.E2E_MODE === "dev") {
    try {
      rmdirSync(dirname(served)); // public/, when the test made it
    } catch {}
  }
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
  test("shell: worker starts with a wasm backend, cross-origin isolated, with kernel threads", async () => {
    // by default the worker leaves one core to the page; ?threads=2 asks for a pool on any machine
    const { page, errors, context } = await openPage(browser, `${server.url}?threads=2#text`);
    await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
    const backend = await page.getAttribute("#backend", "data-backend");
    assert.match(backend, /^wasm-/);
    assert.match(await page.textContent("#backend"), /cross-origin isolated/);
    // the compute worker starts its own pool of the threads asked for
    const threads = Number(await page.getAttribute("#backend", "data-threads"));
    assert.equal(threads, 2);
    assert.match(await page.textContent("#backend"), threads > 1 ? new RegExp(`${threads} threads`) : /1 thread/);
    // a loaded machine may let the calling thread take every tile of one product before a
    // sleeping worker wakes: a few products, then the workers must have taken part
    let stats;
    for (let i = 0; i < 10; i++) {
      stats = await page.evaluate(() => window.__threadStats());
      if (stats.workerTiles > 0) break;
    }
    assert.equal(stats.threads, threads);
    assert.ok(Math.abs(stats.probe[0] - stats.probe[1]) < 1e-3, `probe ${stats.probe}`);
    if (threads > 1) {
      assert.ok(stats.splitCalls > 0, "the product was split over the threads");
      assert.ok(stats.workerTiles > 0, "the pool's workers ran tiles");
    }
    for (const id of ["vit", "train", "generate", "attention", "embeddings", "seq2seq", "vlm", "text"]) {
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

describe("models", () => {
  const PROMPT = "The meaning of life is";
  const SENTENCE = "The animal didn't cross the street because it was too tired";

  test("text generation: GPT-2 folder by URL, streamed greedy tokens, stop, cancel", async () => {
    // expected stream: the same checkpoint in Node (greedy)
    const { loadPretrained } = await import("@wasmformer/llm");
    const m = await loadPretrained(join(served, "gpt2"));
    let expected = "";
    let n = 0;
    for await (const c of m.generate(PROMPT, { maxNewTokens: 24 })) {
      expected += c.text;
      n++;
    }
    const { page, errors, context } = await openPage(browser, `${server.url}#generate`);
    await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
    const load = await measure(page, async () => {
      await page.fill("#gpt2-url", "/__e2e__/gpt2/");
      await page.click("#gpt2-load-url");
      await waitDone(page, "#gpt2-status");
    });
    assertResponsive(load, "GPT-2 loading");
    assert.match(await page.textContent("#gpt2-status"), /2 layers, 4 heads/);
    assert.equal(await page.$eval("#page-generate .loader progress", (p) => p.value), 1);

    await page.fill("#gen-prompt", PROMPT);
    await page.fill("#gen-max", "24");
    const gen = await measure(page, async () => {
      await page.click("#gen-run");
      await waitDone(page, "#gen-status");
    });
    assertResponsive(gen, "generation");
    assert.equal(await page.textContent("#gen-text"), expected);
    assert.equal(await page.getAttribute("#gen-text", "data-tokens"), String(n));
    assert.match(await page.textContent("#gen-rate"), /tokens\/s/);
    await screenshot(page, "generate");

    // stop as soon as the first token arrives (clicked from the page, so it does not race the stream)
    await page.fill("#gen-max", "100");
    await page.evaluate(() => {
      const target = document.getElementById("gen-out");
      const mo = new MutationObserver(() => {
        if (document.getElementById("gen-text")?.textContent) {
          mo.disconnect();
          document.getElementById("gen-stop").click();
        }
      });
      mo.observe(target, { childList: true, subtree: true, characterData: true });
    });
    await page.click("#gen-run");
    await waitDone(page, "#gen-status");
    assert.match(await page.textContent("#gen-status"), /stopped/);
    assert.ok(Number(await page.getAttribute("#gen-text", "data-tokens")) < 100);

    // cancel terminates the worker: the run fails with an AbortError in the page, the worker restarts
    await page.evaluate(() => {
      const target = document.getElementById("gen-out");
      const mo = new MutationObserver(() => {
        if (document.getElementById("gen-text")?.textContent) {
          mo.disconnect();
          document.getElementById("gen-cancel").click();
        }
      });
      mo.observe(target, { childList: true, subtree: true, characterData: true });
    });
    await page.click("#gen-run");
    await page.waitForSelector('#gen-status[data-state="error"]');
    assert.match(await page.textContent("#page-generate .error"), /AbortError: cancelled/);
    await page.waitForSelector("#backend[data-backend]");
    assert.equal(await page.isDisabled("#gen-run"), true, "the model is gone with the old worker");

    // a folder without weights: a typed error in the page
    await page.fill("#gpt2-url", "/__e2e__/nothing-here/");
    await page.click("#gpt2-load-url");
    await page.waitForSelector('#gpt2-status[data-state="error"]');
    assert.match(await page.textContent("#page-generate .loader .error"), /WeightsError: model\.safetensors not found/);
    assert.deepEqual(
      errors.filter((e) => !/cancelled|not found|404/.test(e)),
      [],
    );
    await context.close();
  });

  test("attention: per-layer, per-head heatmaps of the loaded GPT-2", async () => {
    const { loadPretrained } = await import("@wasmformer/llm");
    const m = await loadPretrained(join(served, "gpt2"));
    const ids = m.tokenizer.encode(SENTENCE);
    const att = m.prefill([ids], { logits: "none", outputAttentions: true }).attentions;
    const L = att.length;
    const H = 4;
    const T = ids.length;
    const { page, errors, context } = await openPage(browser, `${server.url}#attention`);
    // load by drag and drop: a drop event carrying the folder's files
    await page.evaluate(async () => {
      const dt = new DataTransfer();
      for (const name of ["config.json", "model.safetensors", "vocab.json", "merges.txt"]) {
        const blob = await (await fetch(`/__e2e__/gpt2/${name}`)).blob();
        dt.items.add(new File([blob], name));
      }
      document
        .getElementById("attn-gpt2-drop")
        .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await waitDone(page, "#attn-gpt2-status");
    await page.fill("#attn-sentence", SENTENCE);
    await page.hover("#attn-run"); // Playwright's own actionability scripts run before the measured click
    const r = await measure(page, async () => {
      await page.click("#attn-run");
      await waitDone(page, "#attn-status");
    });
    assertResponsive(r, "attention");
    assert.equal(await page.$$eval("#attn-out figure canvas.cells", (c) => c.length), H);
    for (const layer of [0, L - 1]) {
      await page.selectOption("#attn-layer", String(layer));
      await page.waitForSelector('#attn-out[data-ready="1"]');
      const rows = await cells(page, "table.attn-argmax");
      assert.equal(rows.length, T);
      const w = att[layer].data; // [1, H, T, T]
      for (let i = 0; i < T; i++) {
        for (let hd = 0; hd < H; hd++) {
          const row = w.subarray((hd * T + i) * T, (hd * T + i + 1) * T);
          const best = Math.max(...row);
          const got = Number(rows[i][1 + hd].split(" ").pop());
          close(got, best, 2e-3);
          // causal: nothing after the query
          for (let j = i + 1; j < T; j++) assert.equal(row[j], 0);
        }
      }
    }
    // what the default query (the last token here: this tokenizer has no "it" token) attends to in layer 0
    await page.selectOption("#attn-layer", "0");
    await page.waitForSelector('#attn-out[data-ready="1"]');
    assert.equal(await page.inputValue("#attn-query"), String(T - 1));
    for (let hd = 0; hd < H; hd++) {
      const titles = await page.$$eval(`#attn-chips [data-head="${hd}"] .chip`, (c) => c.map((x) => Number(x.title)));
      assert.equal(titles.length, T);
      const row = att[0].data.subarray((hd * T + T - 1) * T, (hd * T + T) * T);
      titles.forEach((v, j) => {
        close(v, row[j], 2e-3);
      });
    }
    await screenshot(page, "attention");
    assert.deepEqual(errors, []);
    await context.close();
  });

  test("ViT: folder by file picker, classification, CLS overlays, mean attention distance", async () => {
    const dir = join(ckpt, "vit");
    // expected: the same checkpoint and picture in Node (no resize: the picture is 32×32)
    const { meanAttentionDistance, ViTModel } = await import("@wasmformer/vit");
    const model = await ViTModel.fromPretrained({
      config: JSON.parse(readFileSync(join(dir, "config.json"), "utf8")),
      weights: readFileSync(join(dir, "model.safetensors")),
    });
    const { rgb } = testImage(32, 32);
    const px = new Float32Array(3 * 32 * 32);
    for (let c = 0; c < 3; c++) for (let i = 0; i < 32 * 32; i++) px[c * 1024 + i] = (rgb[i * 3 + c] / 255 - 0.5) / 0.5;
    const out = model.forward(new Tensor(px, [1, 3, 32, 32]), { outputAttentions: true });
    const z = Array.from(out.logits.data);
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const s = e.reduce((a, b) => a + b, 0);
    const probs = e.map((v) => v / s);
    const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
    const dist = meanAttentionDistance(out.attentions, out.grid, 8).data;

    const { page, errors, context } = await openPage(browser, `${server.url}#vit`);
    // the page opens on the embedded digits ViT: its first prediction and the sample strip finish
    // first, so that the measured window holds the folder load and what it sets off
    await page.waitForSelector("#page-vit[data-first-prediction]", { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelectorAll("#vit-samples button").length === 40);
    await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    const load = await measure(page, async () => {
      await page.setInputFiles(
        "#vit-files",
        ["config.json", "model.safetensors", "preprocessor_config.json"].map((f) => join(dir, f)),
      );
      await waitDone(page, "#vit-status");
    });
    assertResponsive(load, "ViT loading");
    await page.setInputFiles("#vit-image", join(ckpt, "image.png"));
    const r = await measure(page, async () => {
      await page.click("#vit-run");
      await page.waitForSelector('#page-vit .status[data-state="done"], #page-vit .status[data-state="error"]');
    });
    assertResponsive(r, "ViT classification");
    const top = await cells(page, "table.vit-top");
    assert.equal(top.length, 5);
    top.forEach((row, k) => {
      assert.equal(Number(row[0]), order[k][1]);
      close(Number(row[2]), order[k][0], 1e-3);
    });
    const d = numbers(await cells(page, "table.vit-distance"));
    d.forEach((row, l) => {
      row.forEach((v, hd) => {
        close(v, dist[l * 4 + hd], 1e-2);
      });
    });
    assert.equal(await page.$$eval("#vit-maps canvas", (c) => c.length), 4);
    await screenshot(page, "vit");

    // the built-in sample picture (224×224, resized to the model's 32×32 by the processor)
    const before = await page.getAttribute("#vit-preview", "src");
    await page.click("#vit-sample");
    await page.waitForFunction((b) => document.getElementById("vit-preview").src !== b, before);
    await page.click("#vit-run");
    await page.waitForSelector('#page-vit > .status[data-state="done"]');
    assert.equal((await cells(page, "table.vit-top")).length, 5);

    // an undecodable image: the error is shown in the page
    await page.setInputFiles("#vit-image", join(ckpt, "not-an-image.png"));
    await page.click("#vit-run");
    await page.waitForSelector("#vit-out .error");
    assert.match(await page.textContent("#vit-out .error"), /InputError: the image could not be decoded/);
    assert.deepEqual(
      errors.filter((e) => !/could not be decoded/.test(e)),
      [],
    );
    await context.close();
  });

  test("word embeddings: Word2Vec training with progress and loss, neighbours, analogies, PCA; stop", async () => {
    const { page, errors, context } = await openPage(browser, `${server.url}#embeddings`);
    await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
    await page.fill("#w2v-sentences", "8000");
    await page.fill("#w2v-epochs", "5");
    const m = await measure(page, async () => {
      await page.click("#w2v-train");
      await waitDone(page, "#w2v-status", 120_000);
    });
    assertResponsive(m, "Word2Vec training");
    assert.equal(await page.$eval("#w2v-progress progress", (p) => p.value), 1);
    const vocab = Number(await page.getAttribute("#w2v-results", "data-vocab"));
    assert.ok(vocab > 100);
    // PCA of the planted gendered pairs (11), then of all words
    assert.equal(await page.getAttribute("#w2v-plot", "data-points"), "22");
    // the built-in corpus plants capitals and gendered pairs
    await page.waitForSelector("table.w2v-nn-table");
    const nn = (await cells(page, "table.w2v-nn-table")).map((r) => r[0]);
    const capitals = ["rome", "madrid", "berlin", "moscow", "tokyo", "beijing", "cairo", "algiers", "abuja"];
    assert.ok(
      nn.slice(0, 3).every((w) => capitals.includes(w)),
      `neighbours of paris: ${nn}`,
    );
    assert.equal((await cells(page, "table.w2v-analogy-table"))[0][0], "queen");
    await page.fill("#w2v-a", "france");
    await page.fill("#w2v-b", "paris");
    await page.fill("#w2v-c", "italy");
    await page.click("#w2v-analogy-run");
    await page.waitForFunction(() =>
      document.querySelector("table.w2v-analogy-table th")?.textContent.includes("italy"),
    );
    assert.equal((await cells(page, "table.w2v-analogy-table"))[0][0], "rome");
    await screenshot(page, "embeddings");
    await page.fill("#w2v-plot-words", "");
    await page.click("#w2v-plot-run");
    await page.waitForSelector(`#w2v-plot[data-points="${vocab}"]`);
    // unknown words are reported in the page
    await page.fill("#w2v-query", "xyzzy");
    await page.click("#w2v-nn-run");
    await page.waitForSelector("#w2v-nn .error");
    assert.match(await page.textContent("#w2v-nn .error"), /InputError: "xyzzy" is not in the vocabulary/);

    // stop a long training after its first progress report
    await page.fill("#w2v-epochs", "200");
    await page.click("#w2v-train");
    await page.waitForFunction(() => document.querySelector("#w2v-progress progress").value > 0);
    await page.click("#w2v-stop");
    await page.waitForSelector('#w2v-status[data-state="error"]');
    assert.match(await page.textContent("#page-embeddings .error"), /AbortError/);
    assert.deepEqual(
      errors.filter((e) => !/xyzzy|AbortError|aborted/.test(e)),
      [],
    );
    await context.close();
  });

  test("VLM: ViT → Q-Former → GPT-2 folder, streamed answer to a question about an image, cached image features", async () => {
    const dir = join(ckpt, "vlm");
    const QUESTION = "What is in the picture?";
    // expected: the same checkpoint, picture and question in Node (greedy)
    const { VisionLanguageModel } = await import("@wasmformer/vlm");
    const vlm = await VisionLanguageModel.fromFolder(dir);
    const features = await vlm.encodeImage(new Uint8Array(readFileSync(join(ckpt, "image.png"))));
    let expected = "";
    for await (const c of vlm.generate(features, QUESTION, { maxNewTokens: 20 })) expected += c.answer;
    assert.ok(expected.length > 0);

    const { page, errors, context } = await openPage(browser, `${server.url}#vlm`);
    await page.waitForSelector("#backend[data-backend]", { timeout: 30_000 });
    const load = await measure(page, async () => {
      // the folder picker (webkitdirectory) with the whole checkpoint folder
      await page.setInputFiles("#vlm-dir", dir);
      await waitDone(page, "#vlm-status");
    });
    assertResponsive(load, "VLM loading");
    assert.match(await page.textContent("#vlm-status"), /Q-Former 2 layers, 4 queries/);
    await page.setInputFiles("#vlm-image", join(ckpt, "image.png"));
    await page.fill("#vlm-question", QUESTION);
    await page.fill("#vlm-max", "20");
    const r = await measure(page, async () => {
      await page.click("#vlm-ask");
      await page.waitForSelector(
        '#page-vlm .form .status[data-state="done"], #page-vlm .form .status[data-state="error"]',
      );
    });
    assertResponsive(r, "VLM answer");
    assert.equal(await page.textContent("#vlm-text"), expected);
    assert.match(await page.textContent("#vlm-rate"), /tokens\/s · image encoded in \d+ ms/);
    await screenshot(page, "vlm");
    // a second question about the same picture reuses its features
    await page.click("#vlm-ask");
    await page.waitForSelector('#page-vlm .form .status[data-state="done"]');
    assert.match(await page.textContent("#vlm-rate"), /image encoded in 0 ms/);
    // an empty question is an error shown in the page
    await page.fill("#vlm-question", "  ");
    await page.click("#vlm-ask");
    await page.waitForSelector("#page-vlm .form .error");
    assert.match(await page.textContent("#page-vlm .form .error"), /InputError: ask a question/);
    assert.deepEqual(
      errors.filter((e) => !/ask a question/.test(e)),
      [],
    );
    await context.close();
  });
});
