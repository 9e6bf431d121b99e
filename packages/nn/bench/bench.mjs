// Latency of @wasmformer/nn against onnxruntime-web (wasm backend, one thread, SIMD) running the same
// models exported from PyTorch (tools/export-onnx/export.py), in one process, interleaved round by
// round; medians after warm-up. Both engines are checked against PyTorch's output first. Not a test.
//
//   /usr/bin/python3 tools/export-onnx/export.py      (once; writes packages/nn/bench/models/)
//   pnpm --filter @wasmformer/nn run build && pnpm --filter @wasmformer/nn bench
//   ROUNDS=15 MODELS=lstm,gru pnpm --filter @wasmformer/nn bench
//   THREADS=2 MODELS=lstm,gru node --experimental-wasm-relaxed-simd packages/nn/bench/bench.mjs
//
// THREADS=N (default 1) runs ours on N threads (init({ threads })) and ORT on N
// (env.wasm.numThreads; its Node build threads with worker_threads). With N > 1 only our best
// backend runs: the pool serves one build at a time (init of the other stops it).
//
// Both sides pay for their input/output copies: ORT's `run` copies the feeds and the result, ours
// `forward(Tensor)` copies the input into the wasm heap and the output out of it.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "@wasmformer/core";
import * as nn from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const MODELS_DIR = process.env.MODELS_DIR ?? join(here, "models");
const ROUNDS = Number(process.env.ROUNDS ?? 11);
const BATCH_MS = Number(process.env.BATCH_MS ?? 150);
const WANT = (process.env.MODELS ?? "lstm,gru,mha197,mha512").split(",");

// onnxruntime-web is a devDependency of @wasmformer/core; resolve it from there
const requireFromCore = createRequire(join(here, "../../core/package.json"));
const ort = await import(requireFromCore.resolve("onnxruntime-web"));
const THREADS = Number(process.env.THREADS ?? 1);
// each batch starts after a pause: after running on 2 threads onnxruntime-web's worker keeps
// spinning for ~17 ms, and took a core from whatever ran next (see packages/vit/bench/vit-bench.mjs)
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 50);
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
if (!Number.isInteger(THREADS) || THREADS < 1) throw new Error(`THREADS must be a positive integer, got ${THREADS}`);
ort.env.wasm.numThreads = THREADS;
ort.env.wasm.simd = true;

const SPECS = {
  lstm: {
    target: 0.7,
    target2: 0.7, // at 2 threads each: the 1-thread ratio on this machine kind before the threads
    what: "2-layer LSTM, input 128, hidden 256, 100 steps, batch 1",
    build: (s) => new nn.LSTM(s, { inputSize: 128, hiddenSize: 256, numLayers: 2 }),
    run: (m, x) => m.forward(x).output,
  },
  gru: {
    target: 0.75,
    target2: 0.68,
    what: "2-layer GRU, input 128, hidden 256, 100 steps, batch 1",
    build: (s) => new nn.GRU(s, { inputSize: 128, hiddenSize: 256, numLayers: 2 }),
    run: (m, x) => m.forward(x).output,
  },
  mha197: {
    target: 0.7,
    what: "self-attention T=197, E=192, 3 heads",
    build: (s) => new nn.MultiheadAttention(s, { embedDim: 192, numHeads: 3 }),
    run: (m, x) => m.forward(x, x, x).output,
  },
  mha512: {
    target: 0.7,
    what: "self-attention T=512, E=768, 12 heads",
    build: (s) => new nn.MultiheadAttention(s, { embedDim: 768, numHeads: 12 }),
    run: (m, x) => m.forward(x, x, x).output,
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const maxAbsDiff = (a, b) => {
  let e = 0;
  for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

// CORE_WASM_DIR: load core.wasm / core-relaxed.wasm from there instead of core's build/ (e.g. a
// build of a fixed commit, while the working tree's core is being changed)
const CORE_WASM = process.env.CORE_WASM_DIR
  ? {
      wasm: readFileSync(join(process.env.CORE_WASM_DIR, "core.wasm")),
      wasmRelaxed: readFileSync(join(process.env.CORE_WASM_DIR, "core-relaxed.wasm")),
    }
  : {};

// core compiles one backend at a time (init() replaces it) and createRuntime() instantiates the
// current one, so each runtime is made right after init() of its own backend; a runtime keeps its
// instance when another backend is loaded later
function ours(backend) {
  return async () => {
    await core.init({ backend, threads: THREADS, ...CORE_WASM });
    const rt = core.createRuntime();
    if (rt.backend !== backend) throw new Error(`asked for ${backend}, got ${rt.backend}`);
    const got = core.threadsInfo().threads;
    if (got !== THREADS) throw new Error(`asked for ${THREADS} threads, got ${got} (${core.threadsInfo().reason})`);
    return rt;
  };
}

const engines = [];
if (THREADS === 1 || !core.relaxedSimdSupported()) engines.push({ name: "ours-simd", make: ours("wasm-simd") });
if (core.relaxedSimdSupported()) engines.push({ name: "ours-relaxed", make: ours("wasm-relaxed") });
else console.log("relaxed SIMD unavailable (run node with --experimental-wasm-relaxed-simd); skipping ours-relaxed");

console.log(
  `# @wasmformer/nn vs onnxruntime-web ${ort.env.versions?.web ?? ""} (wasm, ${THREADS} thread(s) each), median ms of ${ROUNDS} interleaved rounds`,
);
console.log(`node ${process.version}, ${new Date().toISOString()}; machine shared with other jobs`);
const rows = [];
for (const name of WANT) {
  const spec = SPECS[name];
  if (!spec) throw new Error(`unknown model ${name}`);
  const onnxPath = join(MODELS_DIR, `${name}.onnx`);
  if (!existsSync(onnxPath)) {
    // the models are exported from PyTorch on demand, not committed: skip (not fail) without them
    console.log(`skipped: missing ${onnxPath} (run /usr/bin/python3 tools/export-onnx/export.py first)`);
    process.exit(0);
  }
  const io = core.parseSafetensors(readFileSync(join(MODELS_DIR, `${name}.io.safetensors`)));
  const x = io.get("input.x");
  const expected = io.get("expected.y");
  const weights = core.parseSafetensors(readFileSync(join(MODELS_DIR, `${name}.safetensors`)));

  const impls = [];
  for (const e of engines) {
    const m = nn.loadModule(weights, spec.build, { runtime: await e.make() });
    impls.push({ name: e.name, run: () => spec.run(m, x), result: async () => spec.run(m, x).data });
  }
  const session = await ort.InferenceSession.create(readFileSync(onnxPath), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const feed = { x: new ort.Tensor("float32", x.data, x.shape) };
  impls.push({ name: "ort", run: () => session.run(feed), result: async () => (await session.run(feed)).y.data });

  for (const im of impls) {
    const err = maxAbsDiff(await im.result(), expected.data);
    if (!(err < 1e-3)) throw new Error(`${name}: ${im.name} differs from PyTorch by ${err}`);
    im.err = err;
  }
  for (const im of impls) {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 200 || n < 3) {
      await im.run();
      n++;
    }
    im.reps = Math.max(1, Math.round((BATCH_MS * n) / (performance.now() - t0)));
    im.times = [];
    im.cpu = [];
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (let s = 0; s < impls.length; s++) {
      const im = impls[(s + round) % impls.length];
      await settle();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < im.reps; i++) await im.run();
      const dt = performance.now() - t0;
      const c = process.cpuUsage(c0);
      im.times.push(dt / im.reps);
      im.cpu.push((c.user + c.system) / 1000 / dt); // CPU time of all threads over wall time
    }
  }
  const ms = Object.fromEntries(impls.map((im) => [im.name, median(im.times)]));
  const target = THREADS > 1 && spec.target2 ? spec.target2 : spec.target;
  const row = {
    name,
    what: spec.what,
    target,
    ms,
    err: Object.fromEntries(impls.map((im) => [im.name, im.err])),
  };
  rows.push(row);
  await session.release();
  const best = Math.min(...engines.map((e) => ms[e.name]));
  console.log(
    `${name.padEnd(7)} ${engines.map((e) => `${e.name} ${ms[e.name].toFixed(2)} ms`).join("  ")}  ort ${ms.ort.toFixed(2)} ms  ` +
      `best/ort ${(best / ms.ort).toFixed(2)}× (target ≤ ${target}×)  CPU/wall ${impls.map((im) => `${im.name} ${median(im.cpu).toFixed(2)}`).join(", ")}  max |Δ| vs torch: ${Object.entries(
        row.err,
      )
        .map(([k, v]) => `${k} ${v.toExponential(1)}`)
        .join(", ")}`,
  );
}
console.log();
const load = (await import("node:os")).loadavg()[0].toFixed(1);
console.log(
  `| model | threads | ${engines.map((e) => e.name).join(" | ")} | onnxruntime-web | ratio (best ours / ORT) | target | load |`,
);
console.log(`|---|---:|${engines.map(() => "---|").join("")}---|---|---|---:|`);
for (const r of rows) {
  const best = Math.min(...engines.map((e) => r.ms[e.name]));
  console.log(
    `| ${r.what} | ${THREADS} | ${engines.map((e) => `${r.ms[e.name].toFixed(2)} ms`).join(" | ")} | ${r.ms.ort.toFixed(2)} ms | ${(best / r.ms.ort).toFixed(2)}× | ≤ ${r.target}× | ${load} |`,
  );
}
core.terminateThreads();
