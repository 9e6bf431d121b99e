/**
 * Training mode of the decoder engine: gradients of tiny GPT-2 and Llama checkpoints against central
 * finite differences of the float64 reference forwards (tiny-gpt2.ts `refForward`, tiny-llama.ts
 * `refLlama`) under the mean cross-entropy written here; both backends; `fit`; eval(); save.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError, init, parseSafetensors, type Tensor } from "@wasmformer/core";
import { AdamW, fit, SGD, selectParams } from "@wasmformer/nn";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { type CausalLM, GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import type { LMExample } from "../src/train.js";
import { makeTiny, refForward, source, type Tiny, type TinySpec } from "./tiny-gpt2.js";
import { type LlamaSpec, makeTinyLlama, refLlama, type TinyLlama } from "./tiny-llama.js";

interface LossOpts {
  ignoreIndex?: number;
  labelSmoothing?: number;
  shiftLabels?: boolean;
}

/** Mean cross-entropy (PyTorch semantics) in float64 from per-sequence logits `[T][V]`. */
function refLoss(
  logitsOf: (ids: number[]) => Float64Array[],
  batch: { ids: number[]; labels: number[] }[],
  o: LossOpts,
): number {
  const ig = o.ignoreIndex ?? -100;
  const eps = o.labelSmoothing ?? 0;
  const shift = o.shiftLabels ?? true;
  let sum = 0;
  let count = 0;
  for (const { ids, labels } of batch) {
    const logits = logitsOf(ids);
    const T = ids.length;
    for (let t = 0; t < T; t++) {
      const y = shift ? (t + 1 < T ? labels[t + 1] : ig) : labels[t];
      if (y === ig) continue;
      const x = logits[t];
      const V = x.length;
      let mx = -Infinity;
      for (const v of x) mx = Math.max(mx, v);
      let z = 0;
      let s = 0;
      for (const v of x) {
        z += Math.exp(v - mx);
        s += v;
      }
      const lse = mx + Math.log(z);
      sum += lse - (1 - eps) * x[y] - (eps / V) * s;
      count++;
    }
  }
  return sum / count;
}

type AnyTiny = { config: Record<string, unknown>; tensors: Map<string, Tensor> };

/**
 * Compare every parameter's gradient from `lossAndGrad` with central differences of `loss` at a
 * few seeded entries per tensor; returns the largest |g − fd| / (atol + rtol·|fd|).
 */
function fdCheck(
  model: CausalLM,
  tiny: AnyTiny,
  batch: { ids: number[]; labels: number[] }[],
  loss: () => number,
  perTensor = 3,
  step = 1e-3,
): { worst: number; checked: number; names: string[] } {
  const params = model.parameters();
  const heap = model.runtime.heap;
  for (const p of params) heap.f32(p.grad, p.size).fill(0);
  const r = model.lossAndGrad(
    batch.map((b) => ({ inputIds: b.ids, labels: b.labels })),
    1,
  );
  expect(r.loss).toBeCloseTo(loss(), 4);
  let ss = 0;
  let n = 0;
  for (const p of params) {
    for (const g of heap.f32(p.grad, p.size)) ss += g * g;
    n += p.size;
  }
  const rms = Math.sqrt(ss / n);
  let worst = 0;
  let checked = 0;
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (const p of params) {
    const data = tiny.tensors.get(p.name)?.data as Float32Array | undefined;
    if (!data) throw new Error(`no tensor ${p.name} in the tiny checkpoint`);
    const grad = heap.f32(p.grad, p.size);
    for (let c = 0; c < perTensor; c++) {
      const i = Math.floor(rand() * p.size);
      const w0 = data[i];
      const h = step * Math.max(1, Math.abs(w0));
      data[i] = w0 + h;
      const wp = data[i];
      const lp = loss();
      data[i] = w0 - h;
      const wm = data[i];
      const lm = loss();
      data[i] = w0;
      const fd = (lp - lm) / (wp - wm);
      worst = Math.max(worst, Math.abs(grad[i] - fd) / (2e-4 * rms + 2e-3 * Math.abs(fd)));
      checked++;
    }
  }
  return { worst, checked, names: params.map((p) => p.name) };
}

const gpt2Batch = (V: number) => [
  { ids: [1, 5, 9, 2, 7, 3, 3, 11], labels: [1, 5, 9, 2, 7, 3, 3, 11] },
  { ids: [4, 4, 0, V - 1, 6, 8, 10, 2], labels: [4, -100, 0, V - 1, -100, 8, 10, 2] },
  { ids: [12, 13, 14, 15, 1, 2, 3, 4], labels: [12, 13, 14, 15, 1, 2, 3, 4] },
];

async function gpt2(tiny: Tiny, opts: Parameters<typeof GPT2LMHeadModel.fromWeights>[2] = {}) {
  return GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), opts);
}
async function llama(tiny: TinyLlama, opts: Parameters<typeof LlamaForCausalLM.fromWeights>[2] = {}) {
  return LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), opts);
}

describe("gradients against finite differences of the f64 reference", () => {
  beforeAll(async () => {
    await init();
  });

  // a ReLU MLP: small steps, so that no difference straddles a kink of the ReLU
  const gpt2Variants: { name: string; spec: TinySpec; loss: LossOpts; step?: number }[] = [
    { name: "tied, gelu_new", spec: { seed: 3 }, loss: {} },
    { name: "untied lm_head, ignore_index", spec: { seed: 4, lmHead: "untied" }, loss: {} },
    { name: "label smoothing 0.1", spec: { seed: 5 }, loss: { labelSmoothing: 0.1 } },
    { name: "relu MLP", spec: { seed: 5, activation: "relu" }, loss: {}, step: 1e-6 },
    { name: "no shift, ignore_index −1", spec: { seed: 6, L: 1 }, loss: { shiftLabels: false, ignoreIndex: -1 } },
  ];
  for (const v of gpt2Variants) {
    test(`GPT-2: ${v.name}`, async () => {
      const tiny = makeTiny({ E: 16, H: 2, V: 24, ...v.spec });
      const V = tiny.config.vocab_size as number;
      let batch = gpt2Batch(V);
      if (v.loss.ignoreIndex === -1)
        batch = batch.map((b) => ({ ...b, labels: b.labels.map((x) => (x === -100 ? -1 : x)) }));
      const model = await gpt2(tiny, { maxBatch: 3 });
      model.train({ maxBatch: 3, maxSeqLen: 8, ...v.loss });
      const loss = () => refLoss((ids) => refForward(tiny, ids).logits, batch, v.loss);
      const r = fdCheck(model, tiny, batch, loss, 3, v.step);
      expect(r.worst).toBeLessThanOrEqual(1);
      // HF names; a tied head is the embedding, not a parameter of its own
      expect(r.names).toContain("transformer.h.0.attn.c_attn.weight");
      expect(r.names.includes("lm_head.weight")).toBe(v.spec.lmHead === "untied");
      model.dispose();
    });
  }

  const llamaVariants: { name: string; spec: LlamaSpec; loss: LossOpts }[] = [
    { name: "GQA 4/2, untied", spec: { seed: 7 }, loss: {} },
    {
      name: "MQA, tied, attention + o_proj + mlp biases",
      spec: { seed: 8, KV: 1, tied: true, attentionBias: true, oBias: true, mlpBias: true },
      loss: {},
    },
    {
      name: "odd head_dim 6, label smoothing",
      spec: { seed: 9, D: 20, H: 3, KV: 3, headDim: 6 },
      loss: { labelSmoothing: 0.2 },
    },
  ];
  for (const v of llamaVariants) {
    test(`Llama: ${v.name}`, async () => {
      const tiny = makeTinyLlama(v.spec);
      const V = tiny.config.vocab_size as number;
      const batch = gpt2Batch(V);
      const model = await llama(tiny, { maxBatch: 3 });
      model.train({ maxBatch: 3, maxSeqLen: 8, ...v.loss });
      const loss = () => refLoss((ids) => refLlama(tiny, ids), batch, v.loss);
      const r = fdCheck(model, tiny, batch, loss);
      expect(r.worst).toBeLessThanOrEqual(1);
      expect(r.names).toContain("model.layers.0.self_attn.q_proj.weight");
      expect(r.names.includes("lm_head.weight")).toBe(!v.spec.tied);
      model.dispose();
    });
  }
});

describe("backends, layouts, modes", () => {
  const tinyL = makeTinyLlama({ seed: 11, attentionBias: true });
  const batch: LMExample[] = [[3, 4, 5, 6, 7, 8], { inputIds: [9, 8, 7, 6, 5, 4], labels: [9, -100, 7, 6, 5, 4] }];

  async function grads(backend: "ref" | "auto", opts: Parameters<typeof LlamaForCausalLM.fromWeights>[2] = {}) {
    await init({ backend });
    const m = await llama(tinyL, { maxBatch: 2, ...opts });
    m.train({ maxSeqLen: 6 });
    const r = m.lossAndGrad(batch, 0.5);
    const out = new Map(m.parameters().map((p) => [p.name, m.runtime.heap.f32(p.grad, p.size).slice()]));
    m.dispose();
    return { loss: r.loss, grads: out };
  }

  function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
    let w = 0;
    for (const [name, x] of a) {
      const y = b.get(name)!;
      for (let i = 0; i < x.length; i++) w = Math.max(w, Math.abs(x[i] - y[i]) / (1e-5 + 1e-3 * Math.abs(y[i])));
    }
    return w;
  }

  test("wasm and reference backends agree; every inference layout gives the same gradients", async () => {
    const ref = await grads("ref");
    const wasm = await grads("auto");
    const blocks = await grads("auto", { layout: "blocks" });
    const rows = await grads("auto", { colBlock: 0, headBlock: 7 });
    expect(Math.abs(ref.loss - wasm.loss)).toBeLessThan(1e-5);
    expect(maxDiff(wasm.grads, ref.grads)).toBeLessThanOrEqual(1);
    expect(maxDiff(blocks.grads, wasm.grads)).toBeLessThanOrEqual(1);
    expect(maxDiff(rows.grads, wasm.grads)).toBeLessThanOrEqual(1);
  });

  test("train() then eval() leaves inference outputs bit-identical; eval after steps matches a fresh load of stateDict", async () => {
    await init();
    for (const layout of [{}, { layout: "blocks" as const }, { colBlock: 0, headBlock: 5 }]) {
      const tiny = makeTiny({ seed: 21, lmHead: "untied" });
      const m = await gpt2(tiny, { maxBatch: 2, ...layout });
      const prompt = [[1, 2, 3, 4, 5]];
      const before = m.forward(prompt).data.slice();
      const dec0 = m.decode([6]).logits!.data.slice();
      m.train({ maxSeqLen: 8 });
      m.eval();
      expect(m.training).toBe(false);
      expect(Array.from(m.forward(prompt).data)).toEqual(Array.from(before));
      expect(Array.from(m.decode([6]).logits!.data)).toEqual(Array.from(dec0));

      // a few steps, then eval(): the same outputs as a model loaded from the trained tensors
      m.train();
      const opt = new SGD(m.runtime, m.parameters(), { lr: 0.1 });
      for (let s = 0; s < 3; s++) {
        opt.zeroGrad();
        m.lossAndGrad([[1, 2, 3, 4, 5, 6, 7, 8]], 1);
        opt.step();
      }
      // training mode: prefill copies the trained parameters in first
      const inTrain = m.forward(prompt).data.slice();
      m.eval();
      const after = m.forward(prompt).data.slice();
      expect(Array.from(inTrain)).toEqual(Array.from(after));
      expect(Math.max(...after.map((x, i) => Math.abs(x - before[i])))).toBeGreaterThan(1e-3);
      const fresh = await GPT2LMHeadModel.fromWeights(tiny.config, source(m.stateDict()), layout);
      expect(Array.from(fresh.forward(prompt).data)).toEqual(Array.from(after));
      fresh.dispose();
      m.dispose();
    }
  });

  test("typed errors: no training mode, batch and labels that do not fit", async () => {
    await init();
    const m = await gpt2(makeTiny({ seed: 2, V: 20 }), { maxBatch: 2 });
    expect(() => m.lossAndGrad([[1, 2, 3]], 1)).toThrow(/call train\(\) first/);
    expect(() => m.evaluate([[1, 2, 3]])).toThrow(/call train\(\) first/);
    expect(() => m.train({ maxSeqLen: 1000 })).toThrow(/maxSeqLen 1000 exceeds/);
    expect(() => m.train({ labelSmoothing: 2 })).toThrow(InputError);
    m.train({ maxBatch: 2, maxSeqLen: 4 });
    expect(() =>
      m.lossAndGrad(
        [
          [1, 2],
          [1, 2],
          [3, 4],
        ],
        1,
      ),
    ).toThrow(/batch of 3 examples exceeds the planned maxBatch 2/);
    expect(() => m.lossAndGrad([[1, 2, 3, 4, 5]], 1)).toThrow(/5 tokens exceed the planned maxSeqLen 4/);
    expect(() =>
      m.lossAndGrad(
        [
          [1, 2, 3],
          [1, 2],
        ],
        1,
      ),
    ).toThrow(/example 1 has 2 tokens/);
    expect(() => m.lossAndGrad([[1, 25, 3]], 1)).toThrow(/token id 25 at input_ids\[0, 1\]/);
    expect(() => m.lossAndGrad([{ inputIds: [1, 2, 3], labels: [1, 99, 3] }], 1)).toThrow(/label 99 at labels\[0, 1\]/);
    expect(() => m.lossAndGrad([[1, 2]], Number.NaN)).toThrow(/scale must be a finite number/);
    expect(() => m.lossAndGrad([], 1)).toThrow(/the batch has no examples/);
    expect(() => m.lossAndGrad("abc" as never, 1)).toThrow(/must be an array of examples/);
    expect(() => m.lossAndGrad([5 as never], 1)).toThrow(/example 0 must be token ids/);
    expect(() => m.lossAndGrad([[1.5, 2]], 1)).toThrow(/token id 1.5 at input_ids\[0, 0\]/);
    // a rejected batch wrote no gradient
    expect(m.parameters().every((p) => m.runtime.heap.f32(p.grad, p.size).every((g) => g === 0))).toBe(true);
    // nothing counted: NaN loss (as PyTorch), no gradient
    const r = m.lossAndGrad([{ inputIds: [1, 2, 3], labels: [-100, -100, -100] }], 1);
    expect(r.count).toBe(0);
    expect(r.loss).toBeNaN();
    expect(m.parameters().every((p) => m.runtime.heap.f32(p.grad, p.size).every((g) => g === 0))).toBe(true);
    expect(() => selectParams(m.parameters(), { freeze: ["transformer.nope."] })).toThrow(/matches no parameter/);
    m.dispose();
  });
});

describe("fit and save", () => {
  let dir: string;
  beforeAll(async () => {
    await init();
    dir = mkdtempSync(join(tmpdir(), "llm-train-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Sequences of a repeating pattern: a model can learn them. */
  const data = Array.from({ length: 16 }, (_, i) => Array.from({ length: 10 }, (_, t) => (i + t * 3) % 12));

  test("GPT-2: fit lowers the loss; frozen tensors stay; save → fromPretrained gives identical outputs", async () => {
    const tiny = makeTiny({ seed: 41, V: 16, E: 16, H: 2 });
    const m = await gpt2(tiny, { maxBatch: 4 });
    m.train({ maxBatch: 4, maxSeqLen: 10 });
    const frozen = "transformer.wpe.weight";
    const groups = selectParams(m.parameters(), { freeze: [frozen], noDecay: [/bias$/, /ln_/] });
    const wpe = m.parameters().find((p) => p.name === frozen)!;
    const wpe0 = m.runtime.heap.f32(wpe.ptr, wpe.size).slice();
    const opt = new AdamW(m.runtime, groups, { lr: 3e-3 });
    const before = m.evaluate(data.slice(0, 4)).loss;
    const h = await fit(m, data, { optimizer: opt, epochs: 4, batchSize: 4, seed: 1, validation: data.slice(0, 4) });
    expect(h.history.at(-1)!.loss).toBeLessThan(h.history[0].loss);
    expect(h.history.at(-1)!.valLoss!).toBeLessThan(before * 0.9);
    expect(Array.from(m.runtime.heap.f32(wpe.ptr, wpe.size))).toEqual(Array.from(wpe0));

    m.eval();
    const prompt = [[1, 4, 7, 10]];
    const out = m.forward(prompt).data.slice();
    await m.save(join(dir, "gpt2"));
    const back = await AutoModelForCausalLM.fromPretrained(join(dir, "gpt2"), { tokenizer: false });
    expect(back).toBeInstanceOf(GPT2LMHeadModel);
    expect(Array.from(back.forward(prompt).data)).toEqual(Array.from(out));
    const file = parseSafetensors(m.saveSafetensors());
    expect(file.names()).not.toContain("lm_head.weight");
    const viaWeights = await GPT2LMHeadModel.fromWeights(tiny.config, file);
    expect(Array.from(viaWeights.forward(prompt).data)).toEqual(Array.from(out));
    back.dispose();
    viaWeights.dispose();
    m.dispose();
  });

  test("Llama (GQA, biases): fit lowers the loss; save → fromPretrained gives identical outputs", async () => {
    const tiny = makeTinyLlama({ seed: 42, V: 16, attentionBias: true, mlpBias: true });
    const m = await llama(tiny, { maxBatch: 4 });
    m.train({ maxBatch: 4, maxSeqLen: 10 });
    const opt = new AdamW(m.runtime, m.parameters(), { lr: 3e-3 });
    const h = await fit(m, data, { optimizer: opt, epochs: 4, batchSize: 4, seed: 2 });
    expect(h.history.at(-1)!.loss).toBeLessThan(h.history[0].loss * 0.9);
    m.eval();
    const prompt = [[2, 5, 8]];
    const out = m.forward(prompt).data.slice();
    await m.save(join(dir, "llama"));
    const back = await LlamaForCausalLM.fromPretrained(join(dir, "llama"), { tokenizer: false });
    expect(Array.from(back.forward(prompt).data)).toEqual(Array.from(out));
    back.dispose();
    m.dispose();
  });

  test("save round trips: original GPT-2 names get HF names; Qwen2 and llama3 rope scaling configs", async () => {
    const prompt = [[3, 1, 4, 1, 5]];
    const g = makeTiny({ seed: 51, prefix: false, legacy: true });
    const m = await gpt2(g);
    expect(m.parameters()[0].name).toBe("transformer.wte.weight");
    const out = m.forward(prompt).data.slice();
    await m.save(join(dir, "orig"));
    const back = await AutoModelForCausalLM.fromPretrained(join(dir, "orig"), { tokenizer: false });
    expect(Array.from(back.forward(prompt).data)).toEqual(Array.from(out));
    back.dispose();
    m.dispose();

    const specs: LlamaSpec[] = [
      { seed: 52, modelType: "qwen2", attentionBias: true, tied: true },
      {
        seed: 53,
        D: 32,
        theta: 100,
        ropeScaling: {
          rope_type: "llama3",
          factor: 4,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 32,
        },
      },
    ];
    for (const [i, spec] of specs.entries()) {
      const t = makeTinyLlama(spec);
      const lm = await llama(t);
      const o = lm.forward(prompt).data.slice();
      await lm.save(join(dir, `llama-${i}`));
      const b = await AutoModelForCausalLM.fromPretrained(join(dir, `llama-${i}`), { tokenizer: false });
      expect(b.config).toEqual(lm.config);
      expect(Array.from(b.forward(prompt).data)).toEqual(Array.from(o));
      b.dispose();
      lm.dispose();
    }
  });

  test("a larger train() plan replaces the smaller one; the gradients do not depend on it", async () => {
    const tiny = makeTinyLlama({ seed: 61 });
    const batch = [[1, 2, 3, 4, 5, 6, 7, 8]];
    const grads = async (plans: number[]) => {
      const m = await llama(tiny);
      for (const T of plans) m.train({ maxSeqLen: T });
      expect(() => m.lossAndGrad(batch, 1)).not.toThrow();
      const g = m.parameters().map((p) => Array.from(m.runtime.heap.f32(p.grad, p.size)));
      m.dispose();
      return g;
    };
    expect(await grads([4, 8])).toEqual(await grads([8]));
  });
});
