// Training benchmark of the decoder engine (not a test): a GPT-2-small-sized model (12 layers,
// E = 768, 12 heads, vocab 50257, 1024 positions) with random weights, batch B × T random ids.
//
//   node --experimental-wasm-relaxed-simd packages/llm/bench/train.mjs
//   env: B=4 T=128 ROUNDS=3 LAYERS=12 BACKEND=auto|wasm-simd|wasm-relaxed NO_MEMORY=1 (skip (c))
//
// (a) one training step (zeroGrad + forward + backward + AdamW step) against the loss-only forward
//     of the same batch (`evaluate`: the same training forward, no backward), medians over ROUNDS,
//     with the step's parts timed separately;
// (c) in a child process: the peak resident memory (maxRSS) of loading the model from a
//     `model.safetensors` folder (written to a temporary folder first, as a user's checkpoint would
//     be), `train()`, an AdamW and one step, against the f32 bytes of the weights.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const B = Number(process.env.B ?? 4);
const T = Number(process.env.T ?? 128);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LAYERS = Number(process.env.LAYERS ?? 12);
const BACKEND = process.env.BACKEND ?? "auto";
const memoryChild = process.argv[2] === "--memory";

const config = {
  model_type: "gpt2",
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: LAYERS,
  n_head: 12,
  activation_function: "gelu_new",
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
};

/** The checkpoint's tensor shapes (HF names, Conv1D layout). */
function shapes() {
  const { vocab_size: V, n_positions: P, n_embd: E } = config;
  const m = new Map([
    ["transformer.wte.weight", [V, E]],
    ["transformer.wpe.weight", [P, E]],
    ["transformer.ln_f.weight", [E]],
    ["transformer.ln_f.bias", [E]],
  ]);
  for (let i = 0; i < LAYERS; i++) {
    const p = `transformer.h.${i}.`;
    for (const [n, s] of [
      ["ln_1.weight", [E]],
      ["ln_1.bias", [E]],
      ["attn.c_attn.weight", [E, 3 * E]],
      ["attn.c_attn.bias", [3 * E]],
      ["attn.c_proj.weight", [E, E]],
      ["attn.c_proj.bias", [E]],
      ["ln_2.weight", [E]],
      ["ln_2.bias", [E]],
      ["mlp.c_fc.weight", [E, 4 * E]],
      ["mlp.c_fc.bias", [4 * E]],
      ["mlp.c_proj.weight", [4 * E, E]],
      ["mlp.c_proj.bias", [E]],
    ]) {
      m.set(p + n, s);
    }
  }
  return m;
}

/** Random tensors made on demand (GPT-2's init scale: N(0, 0.02)-like uniform; gains 1). */
function randomSource(Tensor) {
  const sh = shapes();
  return {
    names: () => [...sh.keys()],
    has: (n) => sh.has(n),
    info: (n) => ({ shape: sh.get(n) }),
    get: (n) => {
      const shape = sh.get(n);
      const size = shape.reduce((a, d) => a * d, 1);
      const a = new Float32Array(size);
      if (/ln_.*weight|ln_f.weight/.test(n)) a.fill(1);
      else if (!n.endsWith("bias")) {
        let s = 0;
        for (const c of n) s = (Math.imul(s, 31) + c.charCodeAt(0)) >>> 0;
        for (let i = 0; i < size; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          a[i] = (s / 2 ** 32 - 0.5) * 0.07; // std 0.02
        }
      }
      return new Tensor(a, shape, "f32");
    },
  };
}

const weightFloats = [...shapes().values()].reduce((a, s) => a + s.reduce((x, d) => x * d, 1), 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** CPU milliseconds of this (single-threaded) process: steadier than wall time on a shared machine. */
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

/** `folder`: load from that checkpoint folder (as a user would), else from the random source. */
async function setup(folder) {
  const core = await import("@wasmformer/core");
  const { GPT2LMHeadModel } = await import("@wasmformer/llm");
  const { AdamW } = await import("@wasmformer/nn");
  const backend = await core.init({ backend: BACKEND });
  const model = folder
    ? await GPT2LMHeadModel.fromPretrained(folder, { maxBatch: B })
    : await GPT2LMHeadModel.fromWeights(config, randomSource(core.Tensor), { maxBatch: B });
  model.train({ maxBatch: B, maxSeqLen: T });
  const opt = new AdamW(model.runtime, model.parameters(), { lr: 1e-4 });
  let s = 7;
  const batch = Array.from({ length: B }, () =>
    Array.from({ length: T }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % config.vocab_size),
  );
  return { backend, model, opt, batch };
}

if (memoryChild) {
  const { model, opt, batch } = await setup(process.argv[3]);
  opt.zeroGrad();
  model.lossAndGrad(batch, 1);
  opt.step();
  const heap = model.runtime.heap;
  process.stdout.write(
    JSON.stringify({
      maxRSS: process.resourceUsage().maxRSS * 1024,
      wasmUsed: heap.used(),
      wasmBytes: heap.buffer().byteLength,
      rss: process.memoryUsage().rss,
    }),
  );
  process.exit(0);
}

const { backend, model, opt, batch } = await setup();
console.log(
  `GPT-2-small-sized (${LAYERS} layers, 768, 12 heads, vocab 50257): ${(weightFloats / 1e6).toFixed(1)} M params; ` +
    `batch ${B}×${T}; backend ${backend}; node ${process.version}; ${os.cpus()[0]?.model}; load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
);
const fwd = { wall: [], cpu: [] };
const parts = { zeroGrad: [], lossAndGrad: [], adamw: [], step: [], stepCpu: [] };
let loss0;
for (let r = 0; r < ROUNDS + 1; r++) {
  let t = performance.now();
  let c = cpu();
  const ev = model.evaluate(batch);
  const f = performance.now() - t;
  const fc = cpu() - c;
  t = performance.now();
  c = cpu();
  opt.zeroGrad();
  const t1 = performance.now();
  const res = model.lossAndGrad(batch, 1);
  const t2 = performance.now();
  opt.step();
  const t3 = performance.now();
  const sc = cpu() - c;
  loss0 ??= ev.loss;
  if (r === 0) continue; // warm-up
  fwd.wall.push(f);
  fwd.cpu.push(fc);
  parts.zeroGrad.push(t1 - t);
  parts.lossAndGrad.push(t2 - t1);
  parts.adamw.push(t3 - t2);
  parts.step.push(t3 - t);
  parts.stepCpu.push(sc);
  console.log(
    `  round ${r}: forward ${f.toFixed(0)} ms (CPU ${fc.toFixed(0)}), step ${(t3 - t).toFixed(0)} ms (CPU ${sc.toFixed(0)}), ` +
      `loss ${res.loss.toFixed(4)}`,
  );
}
const [F, FC, S, SC] = [median(fwd.wall), median(fwd.cpu), median(parts.step), median(parts.stepCpu)];
console.log(`first loss ${loss0.toFixed(4)} (ln V = ${Math.log(config.vocab_size).toFixed(4)})`);
console.log(`forward (evaluate)  wall ${F.toFixed(0)} ms, CPU ${FC.toFixed(0)} ms`);
console.log(
  `training step       wall ${S.toFixed(0)} ms = ${(S / F).toFixed(2)}× forward, CPU ${SC.toFixed(0)} ms = ` +
    `${(SC / FC).toFixed(2)}× forward  (target ≤ 3.2×)\n` +
    `  zeroGrad ${median(parts.zeroGrad).toFixed(0)} ms, forward+backward ${median(parts.lossAndGrad).toFixed(0)} ms, ` +
    `AdamW ${median(parts.adamw).toFixed(0)} ms (wall)`,
);
model.dispose();

if (process.env.NO_MEMORY) process.exit(0);
const folder = mkdtempSync(join(os.tmpdir(), "wasmformer-train-bench-"));
{
  const core = await import("@wasmformer/core");
  const src = randomSource(core.Tensor);
  writeFileSync(join(folder, "config.json"), JSON.stringify(config));
  writeFileSync(
    join(folder, "model.safetensors"),
    core.writeSafetensors(new Map(src.names().map((n) => [n, src.get(n)])), { format: "pt" }),
  );
}
const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--memory", folder], {
  env: process.env,
  encoding: "utf8",
  maxBuffer: 1 << 20,
});
rmSync(folder, { recursive: true, force: true });
if (child.status !== 0) {
  console.log(`memory child failed: ${child.stderr.slice(-2000)}`);
} else {
  const { maxRSS, wasmUsed, wasmBytes } = JSON.parse(child.stdout.trim().split("\n").at(-1));
  const w = weightFloats * 4;
  const mib = (x) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `peak RSS of model + train() + AdamW + one step: ${mib(maxRSS)} = ` +
      `${(maxRSS / w).toFixed(2)}× the f32 weights (${mib(w)})  (target ≤ 5×); ` +
      `wasm heap in use ${mib(wasmUsed)} = ${(wasmUsed / w).toFixed(2)}× (memory ${mib(wasmBytes)})`,
  );
}
