// A Hugging Face model id in the demo's checkpoint loader, against a local server with the hub's URL
// layout (`/<owner>/<name>/resolve/<revision>/<file>`, given to the page as `?hf_endpoint=`): the
// worker downloads the files and keeps them in the Cache Storage, so loading the id again in a new
// page works with the server stopped. Run with the other e2e tests (after `pnpm build`).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeVit } from "./checkpoints.mjs";
import { launch, startPreview } from "./harness.mjs";

let preview;
let browser;
let hub;
let hubUrl;
const requests = [];
const root = mkdtempSync(join(tmpdir(), "demo-hub-"));

before(async () => {
  writeVit(join(root, "tiny-vit"));
  hub = createServer((req, res) => {
    requests.push(req.url);
    res.setHeader("access-control-allow-origin", "*");
    const m = /^\/acme\/([^/]+)\/resolve\/main\/([\w.]+)$/.exec(req.url ?? "");
    const file = m && join(root, m[1], m[2]);
    if (!file || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise((r) => hub.listen(0, "127.0.0.1", r));
  hubUrl = `http://127.0.0.1:${hub.address().port}`;
  preview = await startPreview();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await preview?.stop();
  hub?.closeAllConnections();
  await new Promise((r) => (hub ? hub.close(r) : r()));
  rmSync(root, { recursive: true, force: true });
});

test("ViT by model id: downloaded with progress, cached, loaded again with the hub stopped", async () => {
  const context = await browser.newContext();
  const load = async (id) => {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${preview.url}?hf_endpoint=${encodeURIComponent(hubUrl)}#vit`);
    await page.fill("#vit-hub-id", id);
    await page.click("#vit-load-hub");
    await page.waitForSelector('#vit-status[data-state="done"], #vit-status[data-state="error"]', { timeout: 60_000 });
    const state = await page.getAttribute("#vit-status", "data-state");
    const error = state === "error" ? await page.textContent("#page .error") : "";
    return { page, errors, state, error };
  };

  const first = await load("acme/tiny-vit");
  assert.equal(first.state, "done", first.error);
  assert.deepEqual(
    requests.toSorted(),
    ["config.json", "model.safetensors", "preprocessor_config.json"].map((f) => `/acme/tiny-vit/resolve/main/${f}`),
  );
  const cached = await first.page.evaluate(async () =>
    (await (await caches.open("wasmformer-hub")).keys()).map((r) => new URL(r.url).pathname).sort(),
  );
  assert.equal(cached.length, 3);
  await first.page.close();

  // the hub is gone: the second load is served from the Cache Storage alone
  hub.closeAllConnections();
  await new Promise((r) => hub.close(r));
  hub = undefined;
  const n = requests.length;
  const second = await load("acme/tiny-vit");
  assert.equal(second.state, "done", second.error);
  assert.equal(requests.length, n);

  // an id that is not cached, with the hub stopped: a typed error naming the URL, shown in the page
  const third = await load("acme/other-vit");
  assert.equal(third.state, "error");
  assert.match(third.error, /DownloadError: cannot fetch http:\/\/127\.0\.0\.1:\d+\/acme\/other-vit/);
  assert.deepEqual(second.errors, []);
  await context.close();
});
