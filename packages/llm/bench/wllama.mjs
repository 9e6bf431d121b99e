// Decode speed against llama.cpp compiled to wasm (@wllama/wllama) on the same GGUF file, the same
// thread count, in the same headless Chromium (issue 18). Not a test.
//
//   node packages/llm/bench/wllama.mjs
//   env: N=64 (new tokens) PROMPT_TEXT="Once upon a time," ROUNDS=3 TYPES=F32,Q8_0,Q4_0 THREADS=1,2
//        DIR=/tmp/wasmformer-wllama (where the GGUF files are written once) CHROMIUM_PATH=/usr/bin/chromium
//
// The model is SmolLM2-135M-shaped with seeded random weights (bench/wllama/make-gguf.ts), one file
// per weight type with the same weights, written to DIR once. A Vite dev server with COOP/COEP
// headers (threads need cross-origin isolation) serves bench/wllama/: the page loads the file by
// URL into wllama (llama.cpp's worker, CPU only; n_threads 1 runs without pthreads, 2 with its
// pthread pool; wllama 3 ships one wasm build for both) and into our llm in a module Worker
// (init({ threads })), both with a 256-token context.
//
// Same work: the same prompt text (wllama 3 takes no token ids), which both tokenizers turn into 16
// tokens (checked: llama.cpp's prompt_n = our count), then N greedy new tokens (wllama: temperature
// 0, ignore_eos, no prompt cache). The first run per engine is the warm-up and the check: wllama's
// chosen ids (from `logprobs`) against ours, "same greedy tokens" = the length of the common prefix.
// Decode ms/token excludes the prefill on both sides: llama.cpp's own `timings.predicted_per_token_ms`
// (time from the first new token, which ends the prefill, to the last, over N − 1) and ours timed
// the same way in the worker. Then ROUNDS timed runs alternate the engines (the order flips every
// round) so that load drift hits both; the table has the medians. The last column is the median
// round trip of one wllama `get_result` poll (page → worker → page, no work), which its decode
// figure includes once per token.
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createServer, runnerImport } from "vite";
import { chromiumLaunchOptions } from "../../../tools/chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.N ?? 64);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const TYPES = (process.env.TYPES ?? "F32,Q8_0,Q4_0").split(",");
const THREADS = (process.env.THREADS ?? "1,2").split(",").map(Number);
const DIR = process.env.DIR ?? "/tmp/wasmformer-wllama";
const CONTEXT = 256;
const PROMPT_TEXT = process.env.PROMPT_TEXT ?? "Once upon a time,"; // 16 tokens in this vocabulary
const log = (s) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------
// the GGUF files (written once)

mkdirSync(DIR, { recursive: true });
const file = (type) => join(DIR, `smollm2-135m-random-${type}.gguf`);
const missing = TYPES.filter((t) => !existsSync(file(t)));
if (missing.length > 0) {
  const { module: gen } = await runnerImport(join(here, "wllama", "make-gguf.ts"), {
    root: join(here, ".."),
    configFile: false,
    logLevel: "warn",
  });
  for (const t of missing) {
    const t0 = performance.now();
    gen.writeModel(file(t), t);
    log(`wrote ${file(t)} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
}

// ---------------------------------------------------------------------------------------------
// the server: Vite for the page and the packages, the GGUF files with byte ranges

const isolation = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

/** GET /models/<name>.gguf from DIR, with single byte ranges (our loader reads tensors by range). */
function serveModels(req, res, next) {
  const m = /^\/models\/([\w.-]+\.gguf)(\?|$)/.exec(req.url ?? "");
  if (!m || !existsSync(join(DIR, m[1]))) return next();
  const path = join(DIR, m[1]);
  const size = statSync(path).size;
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
  let [start, end] = [0, size - 1];
  if (range) {
    start = range[1] === "" ? size - Number(range[2]) : Number(range[1]);
    end = range[1] !== "" && range[2] !== "" ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start > end || start >= size) {
      res.writeHead(416, { "Content-Range": `bytes */${size}` });
      return res.end();
    }
  }
  res.writeHead(range ? 206 : 200, {
    ...isolation,
    "Content-Type": "application/octet-stream",
    "Content-Length": end - start + 1,
    "Accept-Ranges": "bytes",
    ...(range ? { "Content-Range": `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(path, { start, end }).pipe(res);
}

const server = await createServer({
  root: join(here, "wllama"),
  configFile: false,
  logLevel: "warn",
  clearScreen: false,
  plugins: [{ name: "models", configureServer: (s) => void s.middlewares.use(serveModels) }],
  resolve: { alias: { "@wasmformer/llm": join(here, "..", "dist", "index.js") } },
  optimizeDeps: { include: ["@wllama/wllama"], noDiscovery: true },
  worker: { format: "es" },
  server: { host: "127.0.0.1", port: 0, headers: isolation, hmr: false },
});
await server.listen();
const base = server.resolvedUrls.local[0];

// ---------------------------------------------------------------------------------------------
// the runs

const browser = await chromium.launch(chromiumLaunchOptions());

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const rows = [];
let libllama = "?";
let promptTokens = 0;
const loads = [loadavg()[0]];
for (const type of TYPES) {
  for (const threads of THREADS) {
    const page = await browser.newPage();
    page.on("pageerror", (e) => log(`page error: ${e}`));
    page.on("console", (m) => {
      if (process.env.VERBOSE) log(`console: ${m.text()}`);
    });
    if (process.env.VERBOSE) await page.addInitScript(() => (globalThis.VERBOSE_NATIVE = true));
    await page.goto(base);
    await page.waitForFunction(() => window.bench !== undefined);
    if (!(await page.evaluate(() => window.bench.isolated()))) throw new Error("the page is not cross-origin isolated");
    const url = `${base}models/smollm2-135m-random-${type}.gguf`;
    const call = (fn, ...args) => page.evaluate(([f, a]) => window.bench[f](...a), [fn, args]);
    const infoW = await call("load", "wllama", "wllama", url, threads, CONTEXT);
    const infoO = await call("load", "ours", "ours", url, threads, CONTEXT);
    libllama = infoW.version;
    if (infoW.threads !== threads || infoO.threads !== threads)
      throw new Error(
        `asked for ${threads} threads, got wllama ${infoW.threads}, ours ${infoO.threads} (${infoO.reason})`,
      );
    // warm-up, and the check of equal work: the same prompt tokens, and the greedy tokens compared
    const checkW = await call("generate", "wllama", PROMPT_TEXT, N, true);
    const checkO = await call("generate", "ours", PROMPT_TEXT, N);
    if (checkW.promptTokens !== checkO.promptIds.length || checkW.newTokens !== N || checkO.ids.length !== N)
      throw new Error(`unequal work: ${JSON.stringify({ checkW, checkO })}`);
    promptTokens = checkO.promptIds.length;
    let agree = 0;
    while (agree < N && checkW.ids[agree] === checkO.ids[agree]) agree++;
    const w = [];
    const o = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const e of r % 2 ? ["ours", "wllama"] : ["wllama", "ours"])
        (e === "wllama" ? w : o).push((await call("generate", e, PROMPT_TEXT, N)).decodeMs);
      loads.push(loadavg()[0]);
    }
    const poll = await call("roundTrip", "wllama");
    const row = { type, threads, theirs: median(w), ours: median(o), agree, poll, theirsRuns: w, oursRuns: o };
    rows.push(row);
    log(`${type} ×${threads}: ${JSON.stringify(row, (_, v) => (typeof v === "number" ? +v.toFixed(2) : v))}`);
    await call("dispose", "wllama");
    await call("dispose", "ours");
    await page.close();
  }
}
const chromiumVersion = `Chromium ${browser.version()}`;
await browser.close();
await server.close();

// ---------------------------------------------------------------------------------------------
// README rows

const f = (x) => x.toFixed(1);
console.log(
  "| weights | threads | llama.cpp-wasm (wllama) ms/token | wasmformer ms/token | tokens/s ours / theirs | same greedy tokens | wllama poll round trip |",
);
console.log(
  "| ------- | ------: | -------------------------------: | ------------------: | ---------------------: | -----------------: | ---------------------: |",
);
for (const r of rows)
  console.log(
    `| ${r.type} | ${r.threads} | ${f(r.theirs)} | ${f(r.ours)} | ${(r.theirs / r.ours).toFixed(2)}× | ${r.agree} / ${N} | ${r.poll.toFixed(2)} ms |`,
  );
const wllamaVersion = JSON.parse(
  readFileSync(join(here, "..", "node_modules", "@wllama", "wllama", "package.json"), "utf8"),
).version;
console.log(
  `\n${chromiumVersion}, @wllama/wllama ${wllamaVersion} (llama.cpp ${libllama}); ${cpus().length} cores, ` +
    `load average ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}; SmolLM2-135M shape, ` +
    `"${PROMPT_TEXT}" (${promptTokens} tokens), ${N} new tokens, median of ${ROUNDS} alternating runs`,
);
