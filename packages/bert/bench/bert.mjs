// BERT benchmark: @wasmformer/bert against onnxruntime-web (wasm backend, one thread) in the same
// process, on the same random weights: a BERT exported by tools/export-onnx/export_bert.py (ONNX
// graph + the HF safetensors folder; default shape all-MiniLM-L6-v2). Not a test.
//
//   /usr/bin/python3 tools/export-onnx/export_bert.py --out /tmp/bert-bench
//   node --experimental-wasm-relaxed-simd packages/bert/bench/bert.mjs /tmp/bert-bench
//   env: BATCH=8 SEQ=128 ROUNDS=5 BACKEND=auto|wasm-simd|wasm-relaxed NO_MEMORY=1 (skip peak RSS)
//
// Both engines compute the same outputs (last_hidden_state [B, T, D] and pooler_output [B, D]) for
// the same ids, attention mask (the last rows padded) and token type ids; the script checks them
// against each other first. Peak resident memory (VmHWM; see peakRssKb) is measured in child processes, one
// engine each (load + one forward).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * Peak resident memory of this process in KiB: `VmHWM` of /proc/self/status on Linux, else getrusage's
 * maxRSS. Linux keeps ru_maxrss across fork + exec, so a child's maxRSS is at least the resident memory
 * its parent had when it spawned the child (here: both engines loaded); VmHWM is the child's own peak.
 */
function peakRssKb() {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]);
  } catch {}
  return process.resourceUsage().maxRSS;
}

const folder = process.argv[2] ?? "/tmp/bert-bench";
const only = process.argv[3]; // "--memory=ours" | "--memory=ort"
const B = Number(process.env.BATCH ?? 8);
const T = Number(process.env.SEQ ?? 128);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BACKEND = process.env.BACKEND ?? "auto";
const cfg = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// deterministic inputs: random ids, row b padded after T − 4b tokens (at least 1), segment 1 in the second half
let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const inputs = () => {
  const ids = [];
  const mask = [];
  const types = [];
  for (let b = 0; b < B; b++) {
    const len = Math.max(1, T - 4 * b);
    ids.push(Array.from({ length: T }, (_, t) => (t < len ? 1 + Math.floor(rand() * (cfg.vocab_size - 1)) : 0)));
    mask.push(Array.from({ length: T }, (_, t) => (t < len ? 1 : 0)));
    types.push(Array.from({ length: T }, (_, t) => (t >= T / 2 && t < len ? 1 : 0)));
  }
  return { ids, mask, types };
};

async function loadOurs() {
  const core = await import("@wasmformer/core");
  const { BertModel } = await import("@wasmformer/bert");
  const backend = await core.init({ backend: BACKEND });
  const t0 = performance.now();
  const model = await BertModel.fromPretrained(folder);
  return { model, backend, loadMs: performance.now() - t0 };
}

async function loadOrt() {
  const require = createRequire(fileURLToPath(new URL("../../core/package.json", import.meta.url)));
  const ort = await import(pathToFileURL(require.resolve("onnxruntime-web")).href);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(join(folder, "model.onnx"), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return { ort, session, loadMs: performance.now() - t0 };
}

const oursRun = (o, x) => o.model.forward(x.ids, { attentionMask: x.mask, tokenTypeIds: x.types });

async function ortRun(o, x) {
  const t = (rows) => new o.ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [B, T]);
  return o.session.run({ input_ids: t(x.ids), attention_mask: t(x.mask), token_type_ids: t(x.types) });
}

if (only?.startsWith("--memory=")) {
  const x = inputs();
  if (only === "--memory=ours") oursRun(await loadOurs(), x);
  else await ortRun(await loadOrt(), x);
  console.log(JSON.stringify({ maxRssKb: peakRssKb() }));
  process.exit(0);
}

console.log(
  `BERT shapes: ${cfg.num_hidden_layers} layers, hidden ${cfg.hidden_size}, ${cfg.num_attention_heads} heads, ` +
    `MLP ${cfg.intermediate_size}, vocab ${cfg.vocab_size}; batch ${B} × ${T} tokens; single thread`,
);
const ours = await loadOurs();
const ortE = await loadOrt();
console.log(`load: ours ${ours.loadMs.toFixed(0)} ms (backend ${ours.backend}), ort ${ortE.loadMs.toFixed(0)} ms`);

{
  const x = inputs();
  const a = oursRun(ours, x);
  const b = await ortRun(ortE, x);
  const diff = (p, q) => p.reduce((m, v, i) => Math.max(m, Math.abs(v - q[i])), 0);
  console.log(
    `check: last_hidden_state max |ours − ort| = ${diff(a.lastHiddenState.data, b.last_hidden_state.data).toExponential(2)}, ` +
      `pooler_output ${diff(a.poolerOutput.data, b.pooler_output.data).toExponential(2)}`,
  );
}

// interleaved rounds, so that load from other jobs hits both engines alike; CPU time
// (process.cpuUsage: both engines run on this one thread) is the figure to compare on a busy machine
const times = { ours: [], ort: [], oursCpu: [], ortCpu: [] };
const cpuMs = (c0) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
for (let r = 0; r < ROUNDS; r++) {
  const x = inputs();
  let c0 = process.cpuUsage();
  let t = performance.now();
  oursRun(ours, x);
  times.ours.push(performance.now() - t);
  times.oursCpu.push(cpuMs(c0));
  c0 = process.cpuUsage();
  t = performance.now();
  await ortRun(ortE, x);
  times.ort.push(performance.now() - t);
  times.ortCpu.push(cpuMs(c0));
}
const [mc, tc] = [median(times.oursCpu), median(times.ortCpu)];
console.log(
  `forward ${B}×${T} CPU time (process.cpuUsage): ours ${mc.toFixed(1)} ms, ort ${tc.toFixed(1)} ms → ${(mc / tc).toFixed(2)}×`,
);
const [mo, mt] = [median(times.ours), median(times.ort)];
console.log(`forward ${B}×${T}: ours ${mo.toFixed(1)} ms, ort ${mt.toFixed(1)} ms, ours/ort ${(mo / mt).toFixed(2)}×`);

const rss = (which) => {
  const r = spawnSync(
    process.execPath,
    ["--experimental-wasm-relaxed-simd", fileURLToPath(import.meta.url), folder, `--memory=${which}`],
    {
      encoding: "utf8",
      env: process.env,
    },
  );
  return JSON.parse(r.stdout.trim().split("\n").at(-1)).maxRssKb / 1024;
};
if (!process.env.NO_MEMORY) {
  const [ro, rt] = [rss("ours"), rss("ort")];
  console.log(`peak RSS: ours ${ro.toFixed(0)} MB, ort ${rt.toFixed(0)} MB, ours/ort ${(ro / rt).toFixed(2)}×`);
}
