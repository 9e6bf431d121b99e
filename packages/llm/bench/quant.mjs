// Quantized weights benchmark: decode step and prefill of the same random checkpoint loaded as
// f32, q8 (Q8_0) and q4 (Q4_0), and the peak resident memory of each in its own child process.
// Not a test.
//
//   node --experimental-wasm-relaxed-simd packages/llm/bench/quant.mjs gpt2     # GPT-2-small shape
//   node --experimental-wasm-relaxed-simd packages/llm/bench/quant.mjs smollm   # SmolLM2-135M shape
//   env: PROMPT=64 PREFILLS=128,64 STEPS=16 ROUNDS=5 WASMFORMER_THREADS=1 DIR=/tmp ORDER=q4,q8,f32 NO_MEMORY=1
//
// ORDER is the load order (and the order within a round). The first few hundred MB a fresh process
// touches stream slower on this machine (README "Order effect"): the default loads f32 last so that
// it does not get the slow pages, which would flatter the quantized models.
//
// The checkpoint (config.json + model.safetensors, seeded random weights, std 0.02) is written to
// $DIR/wf-quant-<shape> once and loaded lazily with AutoModelForCausalLM.fromPretrained, as a user
// would. Timings interleave the three models round by round (the machine is shared: compare the
// ratios of one run, not absolute numbers across runs): each round runs, per model, one prefill
// of each length in PREFILLS, then STEPS decode steps after a PROMPT-token prefill (median times
// per model over all rounds; for prefill also the median of the per-round ratios to f32, which
// drift during the run does not move). The last lines are the README table's rows.
// Times are CPU time of the process (`process.cpuUsage`, one kernel thread: WASMFORMER_THREADS=1),
// which a busy machine distorts less than wall time; wall-time ratios are printed too.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const shape = process.argv[2] ?? "gpt2";
const only = process.argv[3]; // "--memory=<dtype>" in a child process
const PROMPT = Number(process.env.PROMPT ?? 64);
const STEPS = Number(process.env.STEPS ?? 16);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const DIR = process.env.DIR ?? "/tmp";
const DTYPES = (process.env.ORDER ?? "q4,q8,f32").split(",");
const PREFILLS = (process.env.PREFILLS ?? "128,64").split(",").map(Number);

const CONFIGS = {
  gpt2: {
    model_type: "gpt2",
    vocab_size: 50257,
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
  },
  // the shape bench/wllama/make-gguf.ts writes as a GGUF
  smollm: JSON.parse(readFileSync(new URL("smollm2-shape.json", import.meta.url), "utf8")),
};

function peakRssKb() {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : process.resourceUsage().maxRSS;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The tensor names and shapes of a config (HF names). */
function specs(cfg) {
  const out = [];
  if (cfg.model_type === "gpt2") {
    const E = cfg.n_embd;
    const I = 4 * E;
    out.push(["transformer.wte.weight", [cfg.vocab_size, E]], ["transformer.wpe.weight", [cfg.n_positions, E]]);
    for (let i = 0; i < cfg.n_layer; i++) {
      const p = `transformer.h.${i}.`;
      out.push(
        [`${p}ln_1.weight`, [E]],
        [`${p}ln_1.bias`, [E]],
        [`${p}attn.c_attn.weight`, [E, 3 * E]],
        [`${p}attn.c_attn.bias`, [3 * E]],
        [`${p}attn.c_proj.weight`, [E, E]],
        [`${p}attn.c_proj.bias`, [E]],
        [`${p}ln_2.weight`, [E]],
        [`${p}ln_2.bias`, [E]],
        [`${p}mlp.c_fc.weight`, [E, I]],
        [`${p}mlp.c_fc.bias`, [I]],
        [`${p}mlp.c_proj.weight`, [I, E]],
        [`${p}mlp.c_proj.bias`, [E]],
      );
    }
    out.push(["transformer.ln_f.weight", [E]], ["transformer.ln_f.bias", [E]]);
  } else {
    const D = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const hd = D / cfg.num_attention_heads;
    const kv = cfg.num_key_value_heads * hd;
    out.push(["model.embed_tokens.weight", [cfg.vocab_size, D]]);
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`;
      out.push(
        [`${p}input_layernorm.weight`, [D]],
        [`${p}self_attn.q_proj.weight`, [D, D]],
        [`${p}self_attn.k_proj.weight`, [kv, D]],
        [`${p}self_attn.v_proj.weight`, [kv, D]],
        [`${p}self_attn.o_proj.weight`, [D, D]],
        [`${p}post_attention_layernorm.weight`, [D]],
        [`${p}mlp.gate_proj.weight`, [I, D]],
        [`${p}mlp.up_proj.weight`, [I, D]],
        [`${p}mlp.down_proj.weight`, [D, I]],
      );
    }
    out.push(["model.norm.weight", [D]]);
  }
  return out;
}

/** Write config.json and a seeded random model.safetensors (std 0.02; norm weights 1, biases 0). */
function writeCheckpoint(folder, cfg) {
  mkdirSync(folder, { recursive: true });
  const list = specs(cfg);
  const header = {};
  let off = 0;
  for (const [name, shp] of list) {
    const n = shp.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F32", shape: shp, data_offsets: [off, off + 4 * n] };
    off += 4 * n;
  }
  let h = Buffer.from(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const buf = Buffer.alloc(8 + h.length + off);
  buf.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(buf, 8);
  const data = new Float32Array(buf.buffer, buf.byteOffset + 8 + h.length, off / 4);
  let s = 12345;
  let o = 0;
  for (const [name, shp] of list) {
    const n = shp.reduce((a, b) => a * b, 1);
    const norm = /(ln_\d|ln_f|layernorm|norm)\.weight$/.test(name);
    const bias = name.endsWith(".bias");
    for (let i = 0; i < n; i++) {
      // sum of 3 uniforms: roughly normal, std 0.02
      let u = 0;
      for (let k = 0; k < 3; k++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        u += s / 2 ** 32 - 0.5;
      }
      data[o + i] = norm ? 1 : bias ? 0 : u * 0.04;
    }
    o += n;
  }
  writeFileSync(join(folder, "config.json"), JSON.stringify(cfg, null, 2));
  writeFileSync(join(folder, "model.safetensors"), buf);
}

const cfg = CONFIGS[shape];
if (!cfg) {
  console.error(`usage: quant.mjs gpt2|smollm`);
  process.exit(2);
}
const folder = join(DIR, `wf-quant-${shape}`);
if (!existsSync(join(folder, "model.safetensors"))) writeCheckpoint(folder, cfg);

const core = await import("@wasmformer/core");
const llm = await import("@wasmformer/llm");
const backend = await core.init({ backend: process.env.BACKEND ?? "auto" });
let seed = 777;
const tokens = Array.from({ length: Math.max(PROMPT, ...PREFILLS) }, () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % cfg.vocab_size;
});
const prompt = tokens.slice(0, PROMPT);

const load = (dtype) => llm.AutoModelForCausalLM.fromPretrained(folder, { tokenizer: false, dtype });

if (only?.startsWith("--memory=")) {
  const dtype = only.slice(9);
  const model = await load(dtype);
  model.prefill([prompt]);
  for (let i = 0; i < 4; i++) model.decode([i + 1]);
  console.log(JSON.stringify({ dtype, maxRssKb: peakRssKb(), heapBytes: model.heapBytes }));
  process.exit(0);
}

console.log(
  `${shape}: ${backend.backend ?? JSON.stringify(backend)}, threads ${core.threadsInfo().threads}, load ${(await import("node:os")).loadavg()[0].toFixed(1)}, order ${DTYPES.join(",")}`,
);
const models = {};
for (const d of DTYPES) {
  const t0 = performance.now();
  models[d] = await load(d);
  console.log(
    `loaded ${d} in ${((performance.now() - t0) / 1000).toFixed(1)} s, heap ${(models[d].heapBytes / 2 ** 20).toFixed(0)} MB`,
  );
}
const step = Object.fromEntries(DTYPES.map((d) => [d, []]));
const pre = Object.fromEntries(DTYPES.map((d) => [d, Object.fromEntries(PREFILLS.map((n) => [n, []]))]));
const stepWall = Object.fromEntries(DTYPES.map((d) => [d, []]));
const preWall = Object.fromEntries(DTYPES.map((d) => [d, Object.fromEntries(PREFILLS.map((n) => [n, []]))]));
const cpuMs = (c) => (c.user + c.system) / 1000;
for (let r = 0; r < ROUNDS; r++) {
  for (const d of DTYPES) {
    const m = models[d];
    for (const n of PREFILLS) {
      m.reset();
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      m.prefill([tokens.slice(0, n)]);
      pre[d][n].push(cpuMs(process.cpuUsage(c0)));
      preWall[d][n].push(performance.now() - t0);
    }
    m.reset();
    m.prefill([prompt]);
    let id = 1;
    for (let i = 0; i < STEPS; i++) {
      const t1 = performance.now();
      const c1 = process.cpuUsage();
      m.decode([id]);
      step[d].push(cpuMs(process.cpuUsage(c1)));
      stepWall[d].push(performance.now() - t1);
      id = (id * 31 + 7) % cfg.vocab_size;
    }
  }
}
const res = Object.fromEntries(
  DTYPES.map((d) => [
    d,
    {
      step: median(step[d]),
      stepWall: median(stepWall[d]),
      prefill: Object.fromEntries(PREFILLS.map((n) => [n, median(pre[d][n])])),
      preWall: Object.fromEntries(PREFILLS.map((n) => [n, median(preWall[d][n])])),
    },
  ]),
);
const x = (a, b) => `${(a / b).toFixed(2)}×`;
/** Median over the rounds of f32 prefill time / dtype prefill time within one round: drift-proof. */
const paired = (d, n) => `${median(pre[d][n].map((t, r) => pre.f32[n][r] / t)).toFixed(2)}×`;
for (const d of ["f32", "q8", "q4"]) {
  const r = res[d];
  const f = res.f32;
  console.log(
    `${d}: decode step ${r.step.toFixed(1)} ms CPU (${x(f.step, r.step)} faster than f32; wall ${x(f.stepWall, r.stepWall)})` +
      PREFILLS.map(
        (n) =>
          `, prefill ${n} tokens ${r.prefill[n].toFixed(0)} ms CPU (${x(f.prefill[n], r.prefill[n])}; round by round ${paired(d, n)}; wall ${x(f.preWall[n], r.preWall[n])})`,
      ).join(""),
  );
}
const heapMb = Object.fromEntries(DTYPES.map((d) => [d, models[d].heapBytes / 2 ** 20]));
for (const d of DTYPES) models[d].dispose();

/** README rows: shape | dtype | decode | × | prefill per length | × ... | heap | peak RSS | × */
const NAMES = { gpt2: "GPT-2 small (12 × 768, vocab 50257)", smollm: "SmolLM2-135M (30 × 576, GQA 9/3, vocab 49152)" };
const rows = (mem) => {
  console.log(`rows (load average ${loadNow().toFixed(1)}):`);
  for (const d of ["f32", "q8", "q4"]) {
    const r = res[d];
    const f = res.f32;
    const cells = [
      d === "f32" ? NAMES[shape] : "",
      d,
      `${r.step.toFixed(1)} ms`,
      x(f.step, r.step),
      ...PREFILLS.slice()
        .sort((a, b) => a - b)
        .flatMap((n) => [`${r.prefill[n].toFixed(0)} ms`, x(f.prefill[n], r.prefill[n])]),
      `${heapMb[d].toFixed(0)} MB`,
      mem ? `${(mem[d].maxRssKb / 1024).toFixed(0)} MB` : "",
      mem ? x(mem[d].maxRssKb, mem.f32.maxRssKb) : "",
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
};
function loadNow() {
  return os.loadavg()[0];
}

if (process.env.NO_MEMORY) {
  rows();
  process.exit(0);
}
// peak memory, one child process per dtype
const self = fileURLToPath(import.meta.url);
const mem = {};
for (const d of DTYPES) {
  const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", self, shape, `--memory=${d}`], {
    encoding: "utf8",
    env: process.env,
  });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  mem[d] = JSON.parse(r.stdout.trim().split("\n").pop());
}
console.log(`load average now ${(await import("node:os")).loadavg()[0].toFixed(1)}`);
rows(mem);
for (const d of ["f32", "q8", "q4"]) {
  console.log(
    `${d}: peak RSS (VmHWM) ${(mem[d].maxRssKb / 1024).toFixed(0)} MB (×${(mem[d].maxRssKb / mem.f32.maxRssKb).toFixed(2)} of f32), heap ${(mem[d].heapBytes / 2 ** 20).toFixed(0)} MB`,
  );
}
