/**
 * MiniGPT-4's training recipe (src/train.ts): gradients of the projection and the Q-Former against
 * central finite differences of the float64 oracle of the whole tiny pipeline (test/oracle.ts: ViT →
 * Q-Former → projection → GPT-2 or Llama) under the answer-only cross-entropy written here; frozen
 * parts bit-identical after `fit`; the loss falls on a tiny colour task; reference and wasm backends.
 */
import {
  createRefRuntime,
  createRuntime,
  erf,
  InputError,
  init,
  type Runtime,
  ShapeError,
  Tensor,
} from "@wasmformer/core";
import { AdamW, fit, selectParams } from "@wasmformer/nn";
import { beforeAll, describe, expect, test } from "vitest";
import type { QFormerAdapter } from "../src/adapter.js";
import { MiniGPT4 } from "../src/minigpt4.js";
import { LlavaProjector } from "../src/projector.js";
import type { VLMExample } from "../src/train.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { prefixView, weightSource } from "../src/weights.js";
import { embedName, makeVlm, randomPixels, refLm, refQFormer, refVit, type TinyVlm, type VlmSpec } from "./oracle.js";

beforeAll(async () => {
  await init();
});

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

const SPECS: Record<string, VlmSpec> = {
  gpt2: { freq: 2, Lq: 3, Q: 3, seed: 7, V: 23 },
  llama: { lm: "llama", Et: 16, Ht: 4, KVh: 2, Lt: 2, Q: 3, freq: 1, Lq: 2, V: 23, Pos: 64, seed: 8, bos: 0 },
};

/** An example with id prompts around the image slot. */
function example(px: Tensor, prefix: number[], suffix: number[], answer: number[]): VLMExample {
  return { pixelValues: px, question: { prefixIds: prefix, suffixIds: suffix }, answerIds: answer };
}

/** y (n, out) = x·Wᵀ + b in float64. */
function linear64(
  x: Float64Array,
  n: number,
  inp: number,
  out: number,
  w: Float32Array,
  b: Float32Array,
): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < out; o++) {
      let s = b[o]!;
      for (let i = 0; i < inp; i++) s += x[r * inp + i]! * w[o * inp + i]!;
      y[r * out + o] = s;
    }
  return y;
}

/** The answer-only mean cross-entropy of the whole pipeline in float64 (vision features given: frozen). */
function refLoss(tiny: TinyVlm, vis: Float64Array[], Timg: number, batch: VLMExample[]): number {
  const t = (n: string) => tiny.tensors.get(n)!.data as Float32Array;
  const tc = tiny.config.text_config as Record<string, number>;
  const E = tc.hidden_size ?? tc.n_embd!;
  const V = tc.vocab_size!;
  const Dq = (tiny.config.qformer_config as Record<string, number>).hidden_size!;
  const Q = tiny.config.num_query_tokens as number;
  const wte = t(embedName(tiny));
  let sum = 0;
  let count = 0;
  batch.forEach((ex, b) => {
    const q = refQFormer(tiny, vis[b]!, Timg);
    const proj = linear64(q, Q, Dq, E, t("language_projection.weight"), t("language_projection.bias"));
    const { prefixIds, suffixIds } = ex.question as { prefixIds: number[]; suffixIds: number[] };
    const seq: number[] = [];
    for (const id of prefixIds) seq.push(...wte.subarray(id * E, (id + 1) * E));
    seq.push(...proj);
    for (const id of [...suffixIds, ...Array.from(ex.answerIds)]) seq.push(...wte.subarray(id * E, (id + 1) * E));
    const T = seq.length / E;
    const logits = refLm(tiny, Float64Array.from(seq), T);
    const A = ex.answerIds.length;
    for (let i = 0; i < A; i++) {
      const pos = T - A + i - 1; // logits at pos predict the token at pos + 1
      const row = logits.subarray(pos * V, (pos + 1) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - mx);
      sum += mx + Math.log(z) - row[ex.answerIds[i]!]!;
      count++;
    }
  });
  return sum / count;
}

/** Indices to check of a tensor of n elements: all for small ones, else a seeded sample of k. */
function sample(n: number, k: number, seed: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const out = new Set<number>();
  let s = seed;
  while (out.size < k) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.add(s % n);
  }
  return [...out];
}

describe.each(backends)("gradients against finite differences of the f64 pipeline (%s)", (_b, runtime) => {
  test.each(Object.keys(SPECS))("%s: projection and Q-Former", async (kind) => {
    const tiny = makeVlm(SPECS[kind]!);
    const vlm = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { runtime },
    );
    const px = randomPixels(2, 12, 31);
    const img = (b: number) => new Tensor(px.data.slice(b * 432, (b + 1) * 432), [1, 3, 12, 12]);
    // rows of different lengths (prefix, suffix and answer), padded by the model
    const batch = [example(img(0), [4, 7], [1, 2, 3], [5, 9, 11]), example(img(1), [2], [6], [8, 3])];
    vlm.train({ trainQFormer: true, maxBatch: 2, maxSeqLen: 12 });
    const params = vlm.parameters();
    expect(params.map((p) => p.name)).toContain("language_projection.weight");
    expect(params.map((p) => p.name)).toContain("query_tokens");
    expect(params.map((p) => p.name)).toContain("qformer.encoder.layer.0.crossattention.attention.value.weight");
    vlm.zeroGrad();
    const r = vlm.lossAndGrad(batch, 1);
    expect(r.count).toBe(5);

    const Timg = 10;
    const vis = [0, 1].map((b) => refVit(tiny, img(b).data as Float32Array));
    const L0 = refLoss(tiny, vis, Timg, batch);
    expect(Math.abs(r.loss - L0)).toBeLessThan(1e-4);

    const heap = vlm.runtime.heap;
    let checked = 0;
    let worst = 0;
    for (const [i, p] of params.entries()) {
      const g = heap.f32(p.grad, p.size).slice();
      const w = tiny.tensors.get(p.name)!.data as Float32Array;
      expect(w.length).toBe(p.size);
      // the model's values are the checkpoint's
      expect(heap.f32(p.ptr, p.size)).toEqual(w);
      for (const j of sample(p.size, p.name.startsWith("language_projection") ? 1000 : 4, 17 + i)) {
        const w0 = w[j]!;
        const h = 1e-3 * Math.max(1, Math.abs(w0));
        w[j] = w0 + h;
        const up = w[j]!;
        const lp = refLoss(tiny, vis, Timg, batch);
        w[j] = w0 - h;
        const dn = w[j]!;
        const lm = refLoss(tiny, vis, Timg, batch);
        w[j] = w0;
        const fd = (lp - lm) / (up - dn);
        const err = Math.abs(g[j]! - fd) - (2e-4 + 2e-2 * Math.abs(fd));
        worst = Math.max(worst, err);
        if (err > 0) throw new Error(`${p.name}[${j}]: gradient ${g[j]} vs finite difference ${fd}`);
        checked++;
      }
    }
    expect(worst).toBeLessThanOrEqual(0);
    expect(checked).toBeGreaterThan(200);
    vlm.dispose();
  });
});

describe.each(backends)("fit (%s)", (_b, runtime) => {
  test.each(Object.keys(SPECS))("%s: frozen parts bit-identical, the projection moves", async (kind) => {
    const tiny = makeVlm(SPECS[kind]!);
    const vlm = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { runtime },
    );
    const px = randomPixels(3, 12, 5);
    const data = [0, 1, 2].map((b) =>
      example(new Tensor(px.data.slice(b * 432, (b + 1) * 432), [1, 3, 12, 12]), [3], [4, 5], [6 + b, 1]),
    );
    const lm = vlm.languageModel;
    const lmBefore = lm.parameters().map((p) => lm.runtime.heap.f32(p.ptr, p.size).slice());
    const visBefore = vlm.vision.forward(data[0]!.pixelValues).lastHiddenState.data.slice();
    const question = { prefixIds: [[3]], suffixIds: [[4, 5]] };
    const probe = await vlm.forward(data[1]!.pixelValues, question);
    const qformer = (vlm.adapter as QFormerAdapter).qformer;

    vlm.train({ maxBatch: 2, maxSeqLen: 10 }); // the projection only (MiniGPT-4's default)
    expect(vlm.parameters().map((p) => p.name)).toEqual(["language_projection.weight", "language_projection.bias"]);
    const qBefore = qformer.parameters().map((p) => vlm.runtime.heap.f32(p.ptr, p.size).slice());
    const projBefore = vlm.parameters().map((p) => vlm.runtime.heap.f32(p.ptr, p.size).slice());
    const opt = new AdamW(vlm.runtime, selectParams(vlm.parameters(), { train: ["language_projection."] }), {
      lr: 1e-2,
    });
    const h = await fit(vlm, data, { optimizer: opt, epochs: 2, batchSize: 2, seed: 3 });
    expect(h.steps).toBe(4);

    for (const [i, p] of lm.parameters().entries()) expect(lm.runtime.heap.f32(p.ptr, p.size)).toEqual(lmBefore[i]);
    for (const [i, p] of qformer.parameters().entries())
      expect(vlm.runtime.heap.f32(p.ptr, p.size)).toEqual(qBefore[i]);
    // gradients of the frozen language model were never written
    for (const p of lm.parameters()) expect(lm.runtime.heap.f32(p.grad, p.size).every((x) => x === 0)).toBe(true);
    for (const [i, p] of vlm.parameters().entries())
      expect(vlm.runtime.heap.f32(p.ptr, p.size)).not.toEqual(projBefore[i]);

    vlm.eval();
    expect(vlm.vision.forward(data[0]!.pixelValues).lastHiddenState.data).toEqual(visBefore);
    // the language model's inference is bit-identical on the same embeddings; the image embeddings moved
    const after = await vlm.forward(data[1]!.pixelValues, question);
    const same = lm.prefillEmbeds(probe.inputsEmbeds, { logits: "all" }).logits!;
    expect(same.data).toEqual(probe.logits.data);
    expect(after.imageEmbeds.data).not.toEqual(probe.imageEmbeds.data);
    vlm.dispose();
  });
});

/** Solid-colour images (with a little noise) and the colour's token as the answer. */
function colourTask(n: number, seed: number): VLMExample[] {
  const colours = [
    [1.5, -1, -1],
    [-1, 1.5, -1],
    [-1, -1, 1.5],
  ];
  const noise = randomPixels(n, 12, seed).data as Float32Array;
  return Array.from({ length: n }, (_, i) => {
    const c = i % 3;
    const d = new Float32Array(432);
    for (let ch = 0; ch < 3; ch++)
      for (let j = 0; j < 144; j++) d[ch * 144 + j] = colours[c]![ch]! + 0.1 * noise[i * 432 + ch * 144 + j]!;
    return example(new Tensor(d, [1, 3, 12, 12]), [2, 3], [4], [10 + c]);
  });
}

describe.each(backends)("a tiny colour task (%s)", (_b, runtime) => {
  test.each([
    ["gpt2", false],
    ["llama", true],
  ] as const)("%s (trainQFormer %s): the answer loss falls", async (kind, trainQFormer) => {
    const tiny = makeVlm(SPECS[kind]!);
    const vlm = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { runtime },
    );
    vlm.train({ trainQFormer, maxBatch: 6, maxSeqLen: 8 });
    const data = colourTask(6, 9);
    const before = vlm.evaluate(data).loss;
    const opt = new AdamW(vlm.runtime, vlm.parameters(), { lr: 3e-2 });
    const h = await fit(vlm, data, { optimizer: opt, epochs: 15, batchSize: 6, seed: 1 });
    const after = vlm.evaluate(data).loss;
    expect(h.history.at(-1)!.loss).toBeLessThan(h.history[0]!.loss);
    expect(after).toBeLessThan(0.5 * before);
    vlm.dispose();
  });
});

test("wasm and reference backends give the same loss and gradients", async () => {
  const tiny = makeVlm(SPECS.llama!);
  const px = randomPixels(2, 12, 77);
  const img = (b: number) => new Tensor(px.data.slice(b * 432, (b + 1) * 432), [1, 3, 12, 12]);
  const batch = [example(img(0), [0, 4], [1], [5, 6]), example(img(1), [0], [2, 2], [7])];
  const grads = async (runtime: () => Runtime) => {
    const vlm = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { runtime },
    );
    vlm.train({ trainQFormer: true, maxBatch: 2, maxSeqLen: 10 });
    const r = vlm.lossAndGrad(batch, 1);
    const g = vlm.parameters().map((p) => vlm.runtime.heap.f32(p.grad, p.size).slice());
    vlm.dispose();
    return { loss: r.loss, g };
  };
  const a = await grads(() => createRefRuntime());
  const b = await grads(() => createRuntime());
  expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
  a.g.forEach((x, i) => {
    for (let j = 0; j < x.length; j++)
      expect(Math.abs(x[j]! - b.g[i]![j]!)).toBeLessThan(1e-4 + 1e-3 * Math.abs(x[j]!));
  });
});

test("typed errors: inference mode, bad examples, a frozen Q-Former's names", async () => {
  const tiny = makeVlm(SPECS.gpt2!);
  const vlm = await VisionLanguageModel.fromPretrained({ config: tiny.config, weights: weightSource(tiny.tensors) });
  const px = randomPixels(1, 12, 1);
  const ok = example(px, [1], [2], [3]);
  expect(() => vlm.lossAndGrad([ok], 1)).toThrow(/call train\(\) first/);
  vlm.train({ maxBatch: 2, maxSeqLen: 10 });
  expect(() => vlm.lossAndGrad([], 1)).toThrow(InputError);
  expect(() => vlm.lossAndGrad([{ ...ok, answerIds: [] }], 1)).toThrow(/example 0: answerIds must be a non-empty/);
  expect(() => vlm.lossAndGrad([{ ...ok, answerIds: [99] }], 1)).toThrow(InputError);
  expect(() =>
    vlm.lossAndGrad([{ ...ok, pixelValues: new Tensor(new Float32Array(6), [1, 1, 2, 3]) }, ok], 1),
  ).toThrow();
  expect(() => vlm.lossAndGrad([{ ...ok, pixelValues: new Tensor(new Float32Array(4), [2, 2]) }], 1)).toThrow(
    ShapeError,
  );
  expect(() => vlm.lossAndGrad([ok, ok, ok], 1)).toThrow(/exceeds the planned maxBatch 2/);
  expect(() => selectParams(vlm.parameters(), { train: ["qformer."] })).toThrow(/matches no parameter/);
  expect(() => vlm.train({ trainQFormer: 1 as never })).toThrow(/trainQFormer must be a boolean/);
  expect(vlm.lossAndGrad([ok], 1).count).toBe(1);
  // the parts' own backward: one per training forward, gradients of the forward's shape
  const { qformer, projection } = vlm.adapter as QFormerAdapter;
  qformer.train();
  expect(() => qformer.backward(new Tensor(new Float32Array(30), [1, 3, 10]))).toThrow(/no training forward/);
  qformer.forward(new Tensor(new Float32Array(10 * 12).fill(0.5), [1, 10, 12]));
  expect(() => qformer.backward(new Tensor(new Float32Array(20), [1, 2, 10]))).toThrow(ShapeError);
  qformer.backward(new Tensor(new Float32Array(30), [1, 3, 10])); // the record survived the bad gradient
  expect(() => projection.backward(new Tensor(new Float32Array(5), [1, 1, 5]))).toThrow(ShapeError);
  vlm.dispose();
});

describe.each(backends)("projectors in training mode (%s)", (_b, runtime) => {
  test("LLaVA linear – GELU – linear: gradients and dx against f64 finite differences", async () => {
    const normal = (() => {
      let s = 12345;
      return () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return s / 2147483648 - 0.5;
      };
    })();
    const rand = (shape: number[], k: number) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return new Tensor(
        Float32Array.from({ length: n }, () => k * normal()),
        shape,
      );
    };
    const m = new Map<string, Tensor>([
      ["multi_modal_projector.linear_1.weight", rand([7, 5], 1)],
      ["multi_modal_projector.linear_1.bias", rand([7], 0.2)],
      ["multi_modal_projector.linear_2.weight", rand([7, 7], 1)],
      ["multi_modal_projector.linear_2.bias", rand([7], 0.2)],
    ]);
    const proj = await LlavaProjector.fromWeights(weightSource(m), { runtime: runtime() });
    const x = rand([2, 3, 5], 2);
    const c = rand([2, 3, 7], 1); // loss = Σ c ⊙ y
    const gelu = (z: number) => 0.5 * z * (1 + erf(z / Math.SQRT2));
    const loss = (xs: Float32Array) => {
      const t = (n: string) => m.get(`multi_modal_projector.${n}`)!.data as Float32Array;
      let s = 0;
      for (let r = 0; r < 6; r++) {
        const h = Array.from({ length: 7 }, (_, o) => {
          let z = t("linear_1.bias")[o]!;
          for (let i = 0; i < 5; i++) z += xs[r * 5 + i]! * t("linear_1.weight")[o * 5 + i]!;
          return gelu(z);
        });
        for (let o = 0; o < 7; o++) {
          let y = t("linear_2.bias")[o]!;
          for (let i = 0; i < 7; i++) y += h[i]! * t("linear_2.weight")[o * 7 + i]!;
          s += c.data[r * 7 + o]! * y;
        }
      }
      return s;
    };
    proj.train();
    expect(proj.parameters().map((p) => p.name)).toEqual([
      "multi_modal_projector.linear_1.weight",
      "multi_modal_projector.linear_1.bias",
      "multi_modal_projector.linear_2.weight",
      "multi_modal_projector.linear_2.bias",
    ]);
    proj.forward(x);
    const dx = proj.backward(c);
    expect(() => proj.backward(c)).toThrow(/no training forward/);
    const fd = (arr: Float32Array, j: number, xs: Float32Array) => {
      const w0 = arr[j]!;
      arr[j] = w0 + 1e-3;
      const up = arr[j]!;
      const lp = loss(xs);
      arr[j] = w0 - 1e-3;
      const dn = arr[j]!;
      const lm = loss(xs);
      arr[j] = w0;
      return (lp - lm) / (up - dn);
    };
    const rt = proj.runtime;
    for (const p of proj.parameters()) {
      const g = rt.heap.f32(p.grad, p.size);
      const w = m.get(p.name)!.data as Float32Array;
      for (let j = 0; j < p.size; j++) expect(Math.abs(g[j]! - fd(w, j, x.data as Float32Array))).toBeLessThan(2e-4);
    }
    const xd = (x.data as Float32Array).slice();
    for (let j = 0; j < xd.length; j++) expect(Math.abs(dx.data[j]! - fd(xd, j, xd))).toBeLessThan(2e-4);
    proj.dispose();
  });

  test("MiniGPT-4: the trainable tensors are llama_proj's, by their checkpoint names", async () => {
    const tiny = makeVlm(SPECS.llama!);
    const all = weightSource(tiny.tensors);
    const c = tiny.config;
    const vlm = await MiniGPT4.fromPretrained(
      {
        vision: { config: c.vision_config, weights: prefixView(all, "vision_model.") },
        qformer: { config: { qformer_config: c.qformer_config, num_query_tokens: c.num_query_tokens }, weights: all },
        projection: {
          weights: weightSource(
            new Map([
              ["llama_proj.weight", tiny.tensors.get("language_projection.weight")!],
              ["llama_proj.bias", tiny.tensors.get("language_projection.bias")!],
            ]),
          ),
        },
        llm: { config: c.text_config, weights: prefixView(all, "language_model.") },
      },
      { runtime },
    );
    vlm.train({ maxBatch: 1, maxSeqLen: 8 });
    expect(vlm.parameters().map((p) => p.name)).toEqual(["llama_proj.weight", "llama_proj.bias"]);
    const ex = example(randomPixels(1, 12, 3), [0, 1], [2], [4, 5]);
    const r = vlm.lossAndGrad([ex], 1);
    // the same gradients as the same tensors under BLIP-2's name
    const ref = await VisionLanguageModel.fromPretrained({ config: tiny.config, weights: all }, { runtime });
    ref.train({ maxBatch: 1, maxSeqLen: 8 });
    const r2 = ref.lossAndGrad([ex], 1);
    expect(r.loss).toBe(r2.loss);
    const g = vlm.parameters().map((p) => vlm.runtime.heap.f32(p.grad, p.size).slice());
    const g2 = ref.parameters().map((p) => ref.runtime.heap.f32(p.grad, p.size).slice());
    expect(g).toEqual(g2);
    vlm.dispose();
    ref.dispose();
  });
});

describe.each(backends)("shared runtime of the Q-Former and the projection (%s)", (_b, runtime) => {
  test("re-planning for another image-token count frees only the Q-Former's own scratch", async () => {
    const tiny = makeVlm(SPECS.gpt2!);
    const vlm = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { runtime },
    );
    const feats = (T: number, seed: number) => {
      const d = randomPixels(1, 1, seed).data; // 3 normals, repeated: enough to vary rows
      return new Tensor(
        Float32Array.from({ length: T * 12 }, (_, i) => d[i % 3]! * Math.sin(i + seed)),
        [1, T, 12],
      );
    };
    const a = feats(10, 1);
    const first = vlm.encodeFeatures(a).imageEmbeds.data.slice();
    vlm.encodeFeatures(feats(17, 2)); // a larger Q-Former plan, same projection rows
    expect(vlm.encodeFeatures(a).imageEmbeds.data).toEqual(first);
    vlm.dispose();
  });

  test.each([false, true])(
    "inference before train() (trainQFormer %s): the same gradients as a fresh model",
    async (tq) => {
      const tiny = makeVlm(SPECS.gpt2!);
      const px = randomPixels(2, 12, 13);
      const img = (b: number) => new Tensor(px.data.slice(b * 432, (b + 1) * 432), [1, 3, 12, 12]);
      const batch = [example(img(0), [4], [1, 2], [5, 9]), example(img(1), [2, 2], [6], [8])];
      const grads = async (warm: boolean) => {
        const vlm = await VisionLanguageModel.fromPretrained(
          { config: tiny.config, weights: weightSource(tiny.tensors) },
          { runtime, maxBatch: 2 },
        );
        if (warm) {
          await vlm.forward(px, { prefixIds: [[1], [2]], suffixIds: [[3], [4]] });
          await vlm.forward(img(0), { prefixIds: [[1]], suffixIds: [[3]] });
        }
        vlm.train({ trainQFormer: tq, maxBatch: 2, maxSeqLen: 10 });
        vlm.zeroGrad();
        const r = vlm.lossAndGrad(batch, 1);
        const g = vlm.parameters().map((p) => vlm.runtime.heap.f32(p.grad, p.size).slice());
        const w = vlm.parameters().map((p) => vlm.runtime.heap.f32(p.ptr, p.size).slice());
        vlm.dispose();
        return { loss: r.loss, g, w };
      };
      const fresh = await grads(false);
      const warm = await grads(true);
      expect(warm.loss).toBe(fresh.loss);
      expect(warm.w).toEqual(fresh.w);
      expect(warm.g).toEqual(fresh.g);
    },
  );
});
