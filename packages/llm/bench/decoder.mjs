// Decoder benchmark (GPT-2 or Llama family, read from the folder's config.json): @wasmformer/llm
// against onnxruntime-web (wasm backend, THREADS threads each, default 1) in the same process, on the same random
// weights: a model exported by tools/export-onnx/export_gpt2.py or export_llama.py (ONNX graph with
// a KV cache + the HF safetensors folder). Not a test.
//
//   /usr/bin/python3 tools/export-onnx/export_gpt2.py --out /tmp/gpt2-bench
//   node --experimental-wasm-relaxed-simd packages/llm/bench/decoder.mjs /tmp/gpt2-bench
//   /usr/bin/python3 tools/export-onnx/export_llama.py --out /tmp/llama-bench      # SmolLM2-135M shape
//   node --experimental-wasm-relaxed-simd packages/llm/bench/decoder.mjs /tmp/llama-bench
//   env: PROMPT=128 STEPS=32 ROUNDS=3 BACKEND=auto|wasm-simd|wasm-relaxed THREADS=1 NO_MEMORY=1
//   THREADS=2 NO_MEMORY=1 node --experimental-wasm-relaxed-simd packages/llm/bench/decoder.mjs /tmp/gpt2-bench
//
// THREADS=N runs ours on N threads (init({ threads })) and ORT on N (env.wasm.numThreads; its Node
// build threads with worker_threads); CPU/wall of each shows whether its threads were busy.
//
// Measures, per engine: the prefill of PROMPT tokens (both compute the logits generation needs, the
// last position's: the exported graph does so unless exported with `--logits all`),
// the latency of one decode step with PROMPT tokens cached (median over STEPS × ROUNDS), and, in
// separate child processes (one engine each), the peak resident memory (VmHWM; see peakRssKb) of loading the
// model + prefill + decode.
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

const folder = process.argv[2] ?? process.env.GPT2_BENCH ?? "/tmp/gpt2-bench";
const only = process.argv[3]; // "--memory=ours" | "--memory=ort" (child processes)
if (!folder) {
  console.error("usage: decoder.mjs <folder with config.json, model.safetensors, model.onnx>");
  process.exit(2);
}
const PROMPT = Number(process.env.PROMPT ?? 128);
const STEPS = Number(process.env.STEPS ?? 32);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BACKEND = process.env.BACKEND ?? "auto";
const THREADS = Number(process.env.THREADS ?? 1);
if (!Number.isInteger(THREADS) || THREADS < 1) throw new Error(`THREADS must be a positive integer, got ${THREADS}`);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (kb) => `${(kb / 1024).toFixed(0)} MB`;

// deterministic prompt ids
let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;

async function loadOurs() {
  const core = await import("@wasmformer/core");
  const llm = await import("@wasmformer/llm");
  const backend = await core.init({ backend: BACKEND, threads: THREADS });
  const got = core.threadsInfo();
  if (got.threads !== THREADS)
    throw new Error(`ours: asked for ${THREADS} threads, got ${got.threads} (${got.reason})`);
  const t0 = performance.now();
  const model = await llm.AutoModelForCausalLM.fromPretrained(folder, { tokenizer: false });
  return { model, backend, loadMs: performance.now() - t0 };
}

async function loadOrt() {
  const require = createRequire(fileURLToPath(new URL("../../core/package.json", import.meta.url)));
  const ort = await import(pathToFileURL(require.resolve("onnxruntime-web")).href);
  ort.env.wasm.numThreads = THREADS;
  ort.env.wasm.simd = true;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(join(folder, "model.onnx"), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return { ort, session, loadMs: performance.now() - t0 };
}

/** Layers, key/value heads and head width of a GPT-2 or Llama config (the ONNX cache's shape). */
function dims(cfg) {
  if (cfg.model_type === "gpt2" || cfg.n_embd !== undefined) {
    return { layers: cfg.n_layer, kvHeads: cfg.n_head, headDim: cfg.n_embd / cfg.n_head, name: "GPT-2" };
  }
  const H = cfg.num_attention_heads;
  return {
    layers: cfg.num_hidden_layers,
    kvHeads: cfg.num_key_value_heads ?? H,
    headDim: cfg.head_dim ?? cfg.hidden_size / H,
    name: `${cfg.model_type} (${H} heads / ${cfg.num_key_value_heads ?? H} KV heads, MLP ${cfg.intermediate_size})`,
  };
}

/** ORT: run `ids` with the given past (null = empty), return { logits, present }. */
async function ortRun(o, cfg, ids, past) {
  const { ort, session } = o;
  const { layers, kvHeads, headDim } = dims(cfg);
  const feeds = { input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) };
  for (let i = 0; i < layers; i++) {
    for (const kv of ["key", "value"]) {
      feeds[`past_key_values.${i}.${kv}`] = past
        ? past[`present.${i}.${kv}`]
        : new ort.Tensor("float32", new Float32Array(0), [1, kvHeads, 0, headDim]);
    }
  }
  const out = await session.run(feeds);
  return out;
}

let VOCAB = 50257;
const ids = () => Array.from({ length: PROMPT }, () => Math.floor(rand() * VOCAB));

async function memoryChild(which) {
  const cfg = JSON.parse(await (await import("node:fs/promises")).readFile(join(folder, "config.json"), "utf8"));
  VOCAB = cfg.vocab_size;
  const prompt = ids();
  // also time decode steps here: each engine alone in a fresh process (no order effects)
  const wall = [];
  const cpu = [];
  const step = async (f) => {
    const c0 = process.cpuUsage();
    const t = performance.now();
    await f();
    wall.push(performance.now() - t);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  };
  if (which === "ours") {
    const { model } = await loadOurs();
    model.prefill([prompt]);
    for (let s = 0; s < STEPS; s++) await step(() => model.decode([(s * 31) % cfg.vocab_size]));
  } else {
    const o = await loadOrt();
    let out = await ortRun(o, cfg, prompt, null);
    for (let s = 0; s < STEPS; s++)
      await step(async () => (out = await ortRun(o, cfg, [(s * 31) % cfg.vocab_size], out)));
  }
  console.log(JSON.stringify({ maxRssKb: peakRssKb(), decodeMs: median(wall), decodeCpuMs: median(cpu) }));
}

if (only?.startsWith("--memory=")) {
  await memoryChild(only.slice(9));
  process.exit(0);
}

const cfg = JSON.parse(await (await import("node:fs/promises")).readFile(join(folder, "config.json"), "utf8"));
VOCAB = cfg.vocab_size;
{
  const d = dims(cfg);
  console.log(
    `${d.name} shapes: ${d.layers} layers, width ${cfg.n_embd ?? cfg.hidden_size}, vocab ${cfg.vocab_size}; prompt ${PROMPT}, ` +
      `${STEPS} decode steps × ${ROUNDS} rounds; ${THREADS} thread(s) each`,
  );
}
// ORT_FIRST=1 creates onnxruntime-web's session before our model (the first wasm memory of a process
// measured slower in some runs, so the order is a parameter)
let ours;
let ortE;
if (process.env.ORT_FIRST) {
  ortE = await loadOrt();
  ours = await loadOurs();
} else {
  ours = await loadOurs();
  ortE = await loadOrt();
}
console.log(
  `load: ours ${ours.loadMs.toFixed(0)} ms (backend ${ours.model.runtime.backend}), ort ${ortE.loadMs.toFixed(0)} ms`,
);

// correctness: same weights, same prompt → same last-position logits
{
  const p = ids();
  const a = ours.model.prefill([p]).logits.data;
  const out = await ortRun(ortE, cfg, p, null);
  const V = cfg.vocab_size;
  const b = out.logits.data.subarray(out.logits.data.length - V); // [1, 1, V] or [1, T, V]
  let maxAbs = 0;
  for (let i = 0; i < V; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
  const am = (x) => x.reduce((bi, v, i) => (v > x[bi] ? i : bi), 0);
  console.log(`ORT prefill logits dims [${out.logits.dims}] (equal work: [1, 1, V])`);
  console.log(`check: last-position logits max |ours − ort| = ${maxAbs.toExponential(2)}, argmax ${am(a)} vs ${am(b)}`);
}

const res = {
  oursPrefill: [],
  ortPrefill: [],
  oursDecode: [],
  ortDecode: [],
  oursDecodeCpu: [],
  ortDecodeCpu: [],
  oursPrefillCpu: [],
  ortPrefillCpu: [],
};
const cpuMs = (c0) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const argmaxLast = (lg, V) => {
  const off = lg.length - V;
  let best = 0;
  for (let i = 1; i < V; i++) if (lg[off + i] > lg[off + best]) best = i;
  return best;
};
// each prefill and each block of decode steps starts after a pause: after running on 2 threads
// onnxruntime-web's worker keeps spinning for ~17 ms, and took a core from whatever ran next, here
// our decode step (see packages/vit/bench/vit-bench.mjs). SETTLE_MS=0 drops the pauses.
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 50);
const settle = () => (SETTLE_MS > 0 ? new Promise((r) => setTimeout(r, SETTLE_MS)) : Promise.resolve());
for (let r = 0; r < ROUNDS; r++) {
  const p = ids();
  const V = cfg.vocab_size;
  // prefill: the last position's logits (what generation needs), on both sides
  await settle();
  let c0 = process.cpuUsage();
  let t = performance.now();
  let logits = ours.model.prefill([p]).logits.data;
  res.oursPrefill.push(performance.now() - t);
  res.oursPrefillCpu.push(cpuMs(c0));
  await settle();
  c0 = process.cpuUsage();
  t = performance.now();
  let out = await ortRun(ortE, cfg, p, null);
  res.ortPrefill.push(performance.now() - t);
  res.ortPrefillCpu.push(cpuMs(c0));
  // decode: each engine's STEPS steps back to back, as generation runs them (a step right after a
  // pause ran 2.4 ms slower at 2 threads: 13.7 against 11.4 ms), the two blocks apart by a pause
  await settle();
  for (let s = 0; s < STEPS; s++) {
    const a = argmaxLast(logits, V);
    c0 = process.cpuUsage();
    t = performance.now();
    logits = ours.model.decode([a]).logits.data;
    res.oursDecode.push(performance.now() - t);
    res.oursDecodeCpu.push(cpuMs(c0));
  }
  await settle();
  for (let s = 0; s < STEPS; s++) {
    const b = argmaxLast(out.logits.data, V);
    c0 = process.cpuUsage();
    t = performance.now();
    out = await ortRun(ortE, cfg, [b], out);
    res.ortDecode.push(performance.now() - t);
    res.ortDecodeCpu.push(cpuMs(c0));
  }
}
const oP = median(res.oursPrefill);
const rP = median(res.ortPrefill);
const oD = median(res.oursDecode);
const rD = median(res.ortDecode);
const oPC = median(res.oursPrefillCpu);
const rPC = median(res.ortPrefillCpu);
console.log(
  `prefill CPU time (process.cpuUsage): ours ${oPC.toFixed(1)} ms, ort ${rPC.toFixed(1)} ms → ${(oPC / rPC).toFixed(2)}×`,
);
const oC = median(res.oursDecodeCpu);
const rC = median(res.ortDecodeCpu);
console.log(
  `decode step CPU time (process.cpuUsage): ours ${oC.toFixed(2)} ms, ort ${rC.toFixed(2)} ms → ${(oC / rC).toFixed(2)}×`,
);
const wallOverCpu = (cpu, wall) => (median(cpu) / median(wall)).toFixed(2);
console.log(
  `CPU/wall (medians): prefill ours ${wallOverCpu(res.oursPrefillCpu, res.oursPrefill)}, ort ${wallOverCpu(res.ortPrefillCpu, res.ortPrefill)}; ` +
    `decode ours ${wallOverCpu(res.oursDecodeCpu, res.oursDecode)}, ort ${wallOverCpu(res.ortDecodeCpu, res.ortDecode)}`,
);
console.log(`prefill ${PROMPT} tokens: ours ${oP.toFixed(1)} ms, ort ${rP.toFixed(1)} ms → ${(oP / rP).toFixed(2)}×`);
console.log(
  `decode step (${PROMPT}+ cached): ours ${oD.toFixed(2)} ms (${(1000 / oD).toFixed(1)} tokens/s), ` +
    `ort ${rD.toFixed(2)} ms (${(1000 / rD).toFixed(1)} tokens/s) → ${(oD / rD).toFixed(2)}×`,
);

if (!process.env.NO_MEMORY) {
  const self = fileURLToPath(import.meta.url);
  const child = (which) => {
    const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", self, folder, `--memory=${which}`], {
      encoding: "utf8",
      env: { ...process.env },
    });
    if (r.status !== 0) throw new Error(`memory child ${which} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop());
  };
  const mo = child("ours");
  const mr = child("ort");
  console.log(
    `peak memory (VmHWM, separate processes): ours ${mb(mo.maxRssKb)}, ort ${mb(mr.maxRssKb)} → ${(mo.maxRssKb / mr.maxRssKb).toFixed(2)}×`,
  );
  console.log(
    `decode step alone in a fresh process (${STEPS} steps): ours ${mo.decodeMs.toFixed(2)} ms wall / ${mo.decodeCpuMs.toFixed(2)} ms CPU, ` +
      `ort ${mr.decodeMs.toFixed(2)} ms / ${mr.decodeCpuMs.toFixed(2)} ms → ${(mo.decodeMs / mr.decodeMs).toFixed(2)}× wall, ` +
      `${(mo.decodeCpuMs / mr.decodeCpuMs).toFixed(2)}× CPU`,
  );
}
// README rows (model, threads, ours, ORT, ratio, load average)
{
  const load = (await import("node:os")).loadavg()[0].toFixed(1);
  const name = dims(cfg).name.split(" ")[0];
  console.log(`\n| case | threads | ours | onnxruntime-web | ratio | load |\n|---|---:|---:|---:|---:|---:|`);
  console.log(
    `| ${name} prefill ${PROMPT} | ${THREADS} | ${oP.toFixed(1)} ms | ${rP.toFixed(1)} ms | ${(oP / rP).toFixed(2)}× | ${load} |`,
  );
  console.log(
    `| ${name} decode step (${PROMPT} cached) | ${THREADS} | ${oD.toFixed(2)} ms | ${rD.toFixed(2)} ms | ${(oD / rD).toFixed(2)}× | ${load} |`,
  );
}
if (THREADS > 1) (await import("@wasmformer/core")).terminateThreads();
