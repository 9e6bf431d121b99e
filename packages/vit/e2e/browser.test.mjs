// Browser check (node:test, Debian chromium through playwright-core, as apps/demo does): the
// package's built ES modules run unbundled in a page (an import map points @wasmformer/core at its
// dist/), and the browser-only paths work for real: OffscreenCanvas and ImageBitmap pixels,
// PNG decoding through createImageBitmap, and classify() on the wasm backend.
//
//   pnpm --filter @wasmformer/vit build && node --test packages/vit/e2e/
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromiumLaunchOptions } from "../../../tools/chromium.mjs";

const packagesDir = fileURLToPath(new URL("../../", import.meta.url)); // serves packages/*
const demoRequire = createRequire(new URL("../../../apps/demo/package.json", import.meta.url));
const pw = await import(pathToFileURL(demoRequire.resolve("playwright-core")).href);
const chromium = pw.chromium ?? pw.default.chromium; // CommonJS module: named or default export

const MIME = {
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html",
  ".map": "application/json",
};
const PAGE = `<!doctype html><meta charset="utf-8">
<script type="importmap">{ "imports": { "@wasmformer/core": "/core/dist/index.js" } }</script>
<script type="module">
import { init, Tensor } from "@wasmformer/core";
import { decodeImage, tensorSource, toImageData, ViTForImageClassification } from "/vit/dist/index.js";
try {
  const oc = new OffscreenCanvas(8, 6);
  const ctx = oc.getContext("2d");
  ctx.fillStyle = "rgb(10, 200, 30)";
  ctx.fillRect(0, 0, 8, 6);
  ctx.fillStyle = "rgb(250, 0, 120)";
  ctx.fillRect(4, 0, 4, 6);
  const fromCanvas = await toImageData(oc);
  const bitmap = await createImageBitmap(oc);
  const fromBitmap = await toImageData(bitmap);
  const png = new Uint8Array(await (await oc.convertToBlob({ type: "image/png" })).arrayBuffer());
  const fromPng = await decodeImage(png);
  const backend = await init();
  // a tiny random ViT (HF names) to classify the bitmap on the wasm backend
  const D = 8, I = 16, p = 4, T = 5;
  let s = 1;
  const rnd = (n) => Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5));
  const w = {
    "vit.embeddings.cls_token": new Tensor(rnd(D), [1, 1, D]),
    "vit.embeddings.position_embeddings": new Tensor(rnd(T * D), [1, T, D]),
    "vit.embeddings.patch_embeddings.projection.weight": new Tensor(rnd(D * 3 * p * p), [D, 3, p, p]),
    "vit.embeddings.patch_embeddings.projection.bias": new Tensor(rnd(D), [D]),
    "vit.layernorm.weight": new Tensor(rnd(D), [D]), "vit.layernorm.bias": new Tensor(rnd(D), [D]),
    "classifier.weight": new Tensor(rnd(3 * D), [3, D]), "classifier.bias": new Tensor(rnd(3), [3]),
  };
  const L = "vit.encoder.layer.0.";
  for (const n of ["layernorm_before", "layernorm_after"]) { w[L + n + ".weight"] = new Tensor(rnd(D), [D]); w[L + n + ".bias"] = new Tensor(rnd(D), [D]); }
  for (const n of ["attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense"]) {
    w[L + n + ".weight"] = new Tensor(rnd(D * D), [D, D]); w[L + n + ".bias"] = new Tensor(rnd(D), [D]);
  }
  w[L + "intermediate.dense.weight"] = new Tensor(rnd(I * D), [I, D]); w[L + "intermediate.dense.bias"] = new Tensor(rnd(I), [I]);
  w[L + "output.dense.weight"] = new Tensor(rnd(D * I), [D, I]); w[L + "output.dense.bias"] = new Tensor(rnd(D), [D]);
  const config = { hidden_size: D, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: I, image_size: 8, patch_size: p,
    id2label: { 0: "a", 1: "b", 2: "c" } };
  const model = await ViTForImageClassification.fromPretrained({ config, weights: tensorSource(w) });
  const fromBitmapTop = await model.classify(bitmap, { topK: 3 });
  const fromRawTop = await model.classify(fromCanvas, { topK: 3 });
  const px = (im) => [Array.from(im.data.slice(0, 4)), Array.from(im.data.slice(16, 20)), im.width, im.height];
  window.result = { ok: true, canvas: px(fromCanvas), bitmap: px(fromBitmap), png: px(fromPng), backend, runtime: model.rt.backend,
    fromBitmapTop, fromRawTop };
} catch (e) {
  window.result = { ok: false, error: String(e && e.stack || e) };
}
</script>`;

let server;
let browser;
let url;
before(async () => {
  server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    const file = normalize(join(packagesDir, path));
    if (!file.startsWith(packagesDir)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch(chromiumLaunchOptions());
});
after(async () => {
  await browser?.close();
  server?.close();
});

test("canvas, ImageBitmap and PNG pixels; classify() on wasm in Chromium", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
  const r = await page.evaluate(() => window.result);
  assert.equal(r.ok, true, r.error);
  assert.deepEqual(errors, []);
  // pixel 0 is green, pixel 4 (row 0, column 4) magenta; 8x6 everywhere
  for (const im of [r.canvas, r.bitmap, r.png]) {
    assert.deepEqual(im, [[10, 200, 30, 255], [250, 0, 120, 255], 8, 6]);
  }
  assert.match(r.backend, /^wasm-/);
  assert.equal(r.runtime, r.backend);
  assert.equal(r.fromBitmapTop.length, 3);
  assert.deepEqual(r.fromBitmapTop, r.fromRawTop);
  const total = r.fromBitmapTop.reduce((a, p) => a + p.score, 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `scores sum to ${total}`);
  assert.deepEqual(r.fromBitmapTop.map((p) => p.label).sort(), ["a", "b", "c"]);
});
