// Training mode of ViTForImageClassification: gradients against central finite differences of a
// float64 forward written here from the formulas (odd sizes, batch 3, 2 layers, label smoothing,
// an ignored label), wasm against the reference backend, `fit` lowering the loss, head-only
// fine-tuning, inference unchanged after eval(), save → load round trip, typed errors.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createRefRuntime,
  createRuntime,
  erf,
  InputError,
  init,
  ShapeError,
  Tensor,
  tensorSource,
  writeSafetensors,
} from "@wasmformer/core";
import { AdamW, fit, SGD, selectParams } from "@wasmformer/nn";
import { mulberry32 } from "@wasmformer/test-utils/prng";
import { beforeAll, describe, expect, it } from "vitest";
import {
  loadViTForImageClassification,
  type ViTExample,
  ViTForImageClassification,
  type ViTParam,
} from "../src/index.js";

// ---- a tiny ViT with odd sizes: 2 channels, image 10×10 with patch 3 (a 3×3 grid, one pixel row
// and column unused), hidden 12, 3 heads of 4, MLP 10, 2 layers, 5 labels
const D = 12;
const NH = 3;
const I = 10;
const L = 2;
const C = 2;
const IMG = 10;
const P = 3;
const NL = 5;
const EPS = 1e-6;
const G = Math.floor(IMG / P);
const T = G * G + 1;

const config = (over: Record<string, unknown> = {}) => ({
  hidden_size: D,
  num_hidden_layers: L,
  num_attention_heads: NH,
  intermediate_size: I,
  hidden_act: "gelu",
  layer_norm_eps: EPS,
  image_size: IMG,
  patch_size: P,
  num_channels: C,
  qkv_bias: true,
  num_labels: NL,
  ...over,
});

/** HF-named random weights in the order of `parameters()` (HF state_dict order). */
function randomWeights(seed: number, cfg = { D, I, L, C, P, T, NL }): Record<string, Tensor> {
  const r = mulberry32(seed);
  const out: Record<string, Tensor> = {};
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = new Tensor(
      Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale),
      shape,
    );
  };
  const { D, I, C, P } = cfg;
  put("vit.embeddings.cls_token", [1, 1, D], 0.5);
  put("vit.embeddings.position_embeddings", [1, cfg.T, D], 0.5);
  put("vit.embeddings.patch_embeddings.projection.weight", [D, C, P, P], 0.4);
  put("vit.embeddings.patch_embeddings.projection.bias", [D], 0.2);
  for (let l = 0; l < cfg.L; l++) {
    const n = `vit.encoder.layer.${l}.`;
    for (const q of ["query", "key", "value"]) {
      put(`${n}attention.attention.${q}.weight`, [D, D], 0.5);
      put(`${n}attention.attention.${q}.bias`, [D], 0.2);
    }
    put(`${n}attention.output.dense.weight`, [D, D], 0.3);
    put(`${n}attention.output.dense.bias`, [D], 0.1);
    put(`${n}intermediate.dense.weight`, [I, D], 0.4);
    put(`${n}intermediate.dense.bias`, [I], 0.2);
    put(`${n}output.dense.weight`, [D, I], 0.3);
    put(`${n}output.dense.bias`, [D], 0.1);
    put(`${n}layernorm_before.weight`, [D], 0.2, 1);
    put(`${n}layernorm_before.bias`, [D], 0.2);
    put(`${n}layernorm_after.weight`, [D], 0.2, 1);
    put(`${n}layernorm_after.bias`, [D], 0.2);
  }
  put("vit.layernorm.weight", [D], 0.2, 1);
  put("vit.layernorm.bias", [D], 0.2);
  put("classifier.weight", [cfg.NL, D], 0.5);
  put("classifier.bias", [cfg.NL], 0.1);
  return out;
}

function randomBatch(B: number, seed: number, labels: number[]): ViTExample[] {
  const r = mulberry32(seed);
  return Array.from({ length: B }, (_, b) => ({
    pixelValues: new Tensor(
      Float32Array.from({ length: C * IMG * IMG }, () => r() * 2 - 1),
      [C, IMG, IMG],
    ),
    label: labels[b]!,
  }));
}

// ---- float64 forward and loss, from the formulas (HF ViTForImageClassification, pre-LN)

type Params = Map<string, Float64Array>;

function layerNorm(x: Float64Array, w: Float64Array, b: Float64Array): Float64Array {
  const n = x.length;
  let mean = 0;
  for (const v of x) mean += v / n;
  let v2 = 0;
  for (const v of x) v2 += (v - mean) ** 2 / n;
  const rs = 1 / Math.sqrt(v2 + EPS);
  return x.map((v, i) => (v - mean) * rs * w[i]! + b[i]!);
}

/** y[o] = Σ_i W[o, i]·x[i] + b[o] */
function linear(x: Float64Array, W: Float64Array, b: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b[o]!;
    for (let i = 0; i < n; i++) s += W[o * n + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** Mean cross-entropy (label smoothing ε, ignored label −100) of the f64 forward. */
function refLoss(p: Params, batch: ViTExample[], smoothing: number): number {
  const g = (n: string) => p.get(n)!;
  let total = 0;
  let count = 0;
  for (const ex of batch) {
    const px = (ex.pixelValues as Tensor).data as Float32Array;
    // embeddings
    let h: Float64Array[] = [];
    const pos = g("vit.embeddings.position_embeddings");
    const cls = g("vit.embeddings.cls_token");
    h.push(cls.map((v, d) => v + pos[d]!));
    const Wp = g("vit.embeddings.patch_embeddings.projection.weight");
    const bp = g("vit.embeddings.patch_embeddings.projection.bias");
    for (let r = 0; r < G; r++) {
      for (let c = 0; c < G; c++) {
        const t = 1 + r * G + c;
        const e = new Float64Array(D);
        for (let o = 0; o < D; o++) {
          let s = bp[o]!;
          for (let ch = 0; ch < C; ch++)
            for (let u = 0; u < P; u++)
              for (let v = 0; v < P; v++)
                s += Wp[((o * C + ch) * P + u) * P + v]! * px[(ch * IMG + r * P + u) * IMG + c * P + v]!;
          e[o] = s + pos[t * D + o]!;
        }
        h.push(e);
      }
    }
    // encoder
    const hs = D / NH;
    for (let l = 0; l < L; l++) {
      const n = `vit.encoder.layer.${l}.`;
      const x1 = h.map((t) => layerNorm(t, g(`${n}layernorm_before.weight`), g(`${n}layernorm_before.bias`)));
      const proj = (q: string) =>
        x1.map((t) => linear(t, g(`${n}attention.attention.${q}.weight`), g(`${n}attention.attention.${q}.bias`), D));
      const [Q, K, V] = [proj("query"), proj("key"), proj("value")];
      const ctx = h.map(() => new Float64Array(D));
      for (let hh = 0; hh < NH; hh++) {
        for (let i = 0; i < T; i++) {
          const s = new Float64Array(T);
          let mx = Number.NEGATIVE_INFINITY;
          for (let j = 0; j < T; j++) {
            let d = 0;
            for (let e = 0; e < hs; e++) d += Q[i]![hh * hs + e]! * K[j]![hh * hs + e]!;
            s[j] = d / Math.sqrt(hs);
            mx = Math.max(mx, s[j]!);
          }
          let z = 0;
          for (let j = 0; j < T; j++) z += Math.exp(s[j]! - mx);
          for (let j = 0; j < T; j++) {
            const a = Math.exp(s[j]! - mx) / z;
            for (let e = 0; e < hs; e++) ctx[i]![hh * hs + e]! += a * V[j]![hh * hs + e]!;
          }
        }
      }
      h = h.map((t, i) => {
        const o = linear(ctx[i]!, g(`${n}attention.output.dense.weight`), g(`${n}attention.output.dense.bias`), D);
        return t.map((v, d) => v + o[d]!);
      });
      h = h.map((t) => {
        const x2 = layerNorm(t, g(`${n}layernorm_after.weight`), g(`${n}layernorm_after.bias`));
        const m = linear(x2, g(`${n}intermediate.dense.weight`), g(`${n}intermediate.dense.bias`), I).map(gelu);
        const o = linear(m, g(`${n}output.dense.weight`), g(`${n}output.dense.bias`), D);
        return t.map((v, d) => v + o[d]!);
      });
    }
    const xF = layerNorm(h[0]!, g("vit.layernorm.weight"), g("vit.layernorm.bias"));
    const logits = linear(xF, g("classifier.weight"), g("classifier.bias"), NL);
    if (ex.label === -100) continue;
    const mx = Math.max(...logits);
    let z = 0;
    for (const v of logits) z += Math.exp(v - mx);
    const lse = mx + Math.log(z);
    const mean = logits.reduce((a, v) => a + v, 0) / NL;
    total += lse - (1 - smoothing) * logits[ex.label]! - smoothing * mean;
    count++;
  }
  return total / count;
}

const toF64 = (w: Record<string, Tensor>): Params =>
  new Map(Object.entries(w).map(([n, t]) => [n, Float64Array.from(t.data as Float32Array)]));

async function tinyModel(seed: number, runtime = createRuntime()): Promise<ViTForImageClassification> {
  return ViTForImageClassification.fromPretrained(
    { config: config(), weights: writeSafetensors(randomWeights(seed)) },
    { runtime },
  );
}

function grads(m: ViTForImageClassification): Map<string, Float32Array> {
  const heap = m.runtime.heap;
  return new Map(m.parameters().map((p) => [p.name, heap.f32(p.grad, p.size).slice()]));
}

function values(m: ViTForImageClassification, ps: readonly ViTParam[] = m.parameters()): Map<string, Float32Array> {
  const heap = m.runtime.heap;
  return new Map(ps.map((p) => [p.name, heap.f32(p.ptr, p.size).slice()]));
}

const zeroGrads = (m: ViTForImageClassification) => {
  for (const p of m.parameters()) m.runtime.heap.f32(p.grad, p.size).fill(0);
};

beforeAll(async () => {
  await init();
});

describe("gradients against finite differences of a float64 forward", () => {
  const weights = randomWeights(11);
  const batch = randomBatch(3, 5, [4, -100, 1]);
  const smoothing = 0.1;
  const ref = toF64(weights);

  for (const backend of ["ref", "wasm"] as const) {
    it(`${backend} backend: the loss and every parameter's gradient`, async () => {
      const runtime = backend === "ref" ? createRefRuntime() : createRuntime();
      const m = await ViTForImageClassification.fromPretrained(
        { config: config(), weights: tensorSource(weights) },
        { runtime },
      );
      m.train({ maxBatch: 2, labelSmoothing: smoothing }); // the batch of 3 re-plans the activations
      zeroGrads(m);
      const r = m.lossAndGrad(batch, 1);
      expect(r.count).toBe(2);
      const want = refLoss(ref, batch, smoothing);
      expect(Math.abs(r.loss - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
      const got = grads(m);
      expect([...got.keys()]).toEqual(Object.keys(weights)); // HF state_dict names and order
      const rand = mulberry32(3);
      const h = 1e-5;
      for (const [name, g] of got) {
        const theta = ref.get(name)!;
        let gmax = 0;
        for (const v of g) gmax = Math.max(gmax, Math.abs(v));
        // 4 random entries of each tensor
        const idx = Array.from({ length: 4 }, () => Math.floor(rand() * g.length));
        for (const i of idx) {
          const t0 = theta[i]!;
          theta[i] = t0 + h;
          const up = refLoss(ref, batch, smoothing);
          theta[i] = t0 - h;
          const down = refLoss(ref, batch, smoothing);
          theta[i] = t0;
          const fd = (up - down) / (2 * h);
          expect(Math.abs(g[i]! - fd), `${name}[${i}]: ${g[i]} vs ${fd}`).toBeLessThan(2e-4 * Math.max(gmax, 1e-2));
        }
      }
      m.dispose();
    }, 60_000);
  }

  it("wasm and reference backends give the same gradients; scale and accumulation add up", async () => {
    const a = await ViTForImageClassification.fromPretrained(
      { config: config(), weights: tensorSource(weights) },
      { runtime: createRefRuntime() },
    );
    const b = await ViTForImageClassification.fromPretrained(
      { config: config(), weights: tensorSource(weights) },
      { runtime: createRuntime() },
    );
    a.train({ labelSmoothing: smoothing });
    b.train({ labelSmoothing: smoothing });
    zeroGrads(a);
    zeroGrads(b);
    a.lossAndGrad(batch, 1);
    b.lossAndGrad(batch, 0.5);
    b.lossAndGrad(batch, 0.5); // accumulates: 0.5·g + 0.5·g
    const ga = grads(a);
    for (const [name, g] of grads(b)) {
      const w = ga.get(name)!;
      let gmax = 0;
      for (const v of w) gmax = Math.max(gmax, Math.abs(v));
      for (let i = 0; i < g.length; i++) expect(Math.abs(g[i]! - w[i]!), name).toBeLessThan(1e-4 * gmax + 1e-7);
    }
    a.dispose();
    b.dispose();
  });
});

describe("training with fit", () => {
  /** 40 examples whose class is which of 5 fixed templates (plus noise) the image is. */
  function templateData(n: number, seed: number): ViTExample[] {
    const r = mulberry32(seed);
    const tpl = Array.from({ length: NL }, () => Float32Array.from({ length: C * IMG * IMG }, () => r() * 2 - 1));
    return Array.from({ length: n }, (_, i) => {
      const y = i % NL;
      return {
        pixelValues: Float32Array.from(tpl[y]!, (v) => v + 0.5 * (r() * 2 - 1)),
        label: y,
      };
    });
  }

  it("a few AdamW steps make the loss fall", async () => {
    const m = await tinyModel(21);
    m.train({ maxBatch: 8 });
    const data = templateData(40, 1);
    const before = m.evaluate(data).loss;
    const opt = new AdamW(m.runtime, m.parameters(), { lr: 3e-3, weightDecay: 0.01 });
    const { history } = await fit(m, data, { optimizer: opt, epochs: 6, batchSize: 8, seed: 1 });
    expect(history).toHaveLength(6);
    expect(history[5]!.loss).toBeLessThan(history[0]!.loss);
    const after = m.evaluate(data);
    expect(after.loss).toBeLessThan(0.5 * before);
    expect(after.correct).toBeGreaterThan(30);
    m.dispose();
  });

  it("evaluating between steps (another plan) leaves the optimizer's moments and the training intact", async () => {
    // AdamW allocates its moments above the model's plan; a re-plan (evaluate, another batch size)
    // used to free the heap down to the plan base and overwrite them: the next step gave NaN.
    const data = templateData(24, 3);
    const run = async (evaluateBetween: boolean) => {
      const m = await tinyModel(23);
      m.train({ maxBatch: 8 });
      const opt = new AdamW(m.runtime, m.parameters(), { lr: 3e-3 });
      await fit(m, data, {
        optimizer: opt,
        epochs: 2,
        batchSize: 8,
        onBatchEnd: () => {
          if (evaluateBetween) expect(Number.isFinite(m.evaluate(data.slice(0, 5)).loss)).toBe(true);
          return undefined;
        },
      });
      if (evaluateBetween) m.train({ maxBatch: 16 }); // a larger activation plan, also above the moments
      await fit(m, data, { optimizer: opt, epochs: 1, batchSize: 8 });
      const v = values(m, m.parameters());
      m.dispose();
      return v;
    };
    const plain = await run(false);
    const interleaved = await run(true);
    for (const [name, v] of plain) {
      expect(Buffer.from(interleaved.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
    }
  });

  it("fine-tuning only the head leaves every other parameter bit-identical", async () => {
    const m = await tinyModel(22);
    m.train();
    const params = m.parameters();
    const before = values(m, params);
    const opt = new SGD(m.runtime, selectParams(params, { train: ["classifier."] }), { lr: 0.1, momentum: 0.9 });
    await fit(m, templateData(20, 2), { optimizer: opt, epochs: 2, batchSize: 5 });
    expect(opt.steps).toBe(8);
    const after = values(m, params);
    for (const [name, v] of before) {
      if (name.startsWith("classifier.")) expect(after.get(name), name).not.toEqual(v);
      else expect(Buffer.from(after.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
    }
    // freezing the encoder by prefix: only the head trains
    const groups = selectParams(params, { freeze: ["vit."] });
    expect(groups.flatMap((g) => g.params.map((p) => p.name))).toEqual(["classifier.weight", "classifier.bias"]);
    expect(() => selectParams(params, { freeze: ["vit.encoder.layer.7."] })).toThrow(InputError);
    m.dispose();
  });
});

describe("train() / eval()", () => {
  for (const D8 of [false, true]) {
    it(`inference outputs are unchanged after train() and eval() (${D8 ? "packed" : "plain"} encoder weights)`, async () => {
      const cfg = D8 ? { D: 16, I: 24, L, C, P, T, NL } : undefined;
      const w = randomWeights(31, cfg);
      const over = D8 ? { hidden_size: 16, intermediate_size: 24, num_attention_heads: 4 } : {};
      const load = () => ViTForImageClassification.fromPretrained({ config: config(over), weights: tensorSource(w) });
      const m = await load();
      const px = new Tensor(
        Float32Array.from({ length: 2 * C * IMG * IMG }, (_, i) => Math.sin(i)),
        [2, C, IMG, IMG],
      );
      const out0 = m.forward(px, { outputAttentions: true });
      m.train();
      expect(m.training).toBe(true);
      const inTraining = m.forward(px);
      for (let i = 0; i < out0.logits.size; i++)
        expect(Math.abs(inTraining.logits.data[i]! - out0.logits.data[i]!)).toBeLessThan(1e-5);
      m.lossAndGrad(
        [0, 1].map((b) => ({ pixelValues: px.data.slice(b * C * IMG * IMG, (b + 1) * C * IMG * IMG), label: b })),
        1,
      );
      m.eval();
      expect(m.training).toBe(false);
      const out1 = m.forward(px, { outputAttentions: true });
      expect(out1.logits.data).toEqual(out0.logits.data);
      expect(out1.lastHiddenState.data).toEqual(out0.lastHiddenState.data);
      expect(out1.attentions![1]!.data).toEqual(out0.attentions![1]!.data);
      // train again after eval: the parameters (and their gradients) are where they were
      const names = m.parameters().map((p) => [p.name, p.ptr, p.grad]);
      m.train();
      expect(m.parameters().map((p) => [p.name, p.ptr, p.grad])).toEqual(names);
      m.dispose();
    });
  }

  it("save() writes HF names and config that load back with identical outputs (bytes and folder)", async () => {
    const m = await tinyModel(41);
    m.train();
    const opt = new AdamW(m.runtime, m.parameters(), { lr: 1e-2 });
    const batch = randomBatch(3, 9, [0, 2, 4]);
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      m.lossAndGrad(batch, 1);
      opt.step();
    }
    const px = new Tensor(
      Float32Array.from({ length: 3 * C * IMG * IMG }, (_, i) => Math.cos(i * 0.7)),
      [3, C, IMG, IMG],
    );
    const trainedOut = m.forward(px).logits; // training mode: plain weights
    const saved = m.save();
    expect(saved.config.architectures).toEqual(["ViTForImageClassification"]);
    const back = await ViTForImageClassification.fromPretrained(saved);
    const outBack = back.forward(px).logits;
    for (let i = 0; i < outBack.size; i++) expect(Math.abs(outBack.data[i]! - trainedOut.data[i]!)).toBeLessThan(1e-5);
    m.eval();
    expect(m.forward(px).logits.data).toEqual(outBack.data); // same weights, same inference path: bit-identical
    const savedEval = m.save(); // from eval mode (packed weights, when packed) gives the same file
    expect(Buffer.from(savedEval.weights).equals(Buffer.from(saved.weights))).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), "vit-save-"));
    try {
      await m.saveTo(dir);
      const fromDir = await loadViTForImageClassification(dir);
      expect(fromDir.forward(px).logits.data).toEqual(outBack.data);
      fromDir.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    back.dispose();
    m.dispose();
  });

  it("fromConfig initialises a trainable model deterministically from a seed", async () => {
    const a = await ViTForImageClassification.fromConfig(config(), { seed: 5 });
    const b = await ViTForImageClassification.fromConfig(config(), { seed: 5 });
    a.train();
    b.train();
    expect(values(a)).toEqual(values(b));
    const cls = values(a).get("classifier.bias")!;
    expect([...cls]).toEqual([0, 0, 0, 0, 0]);
    a.dispose();
    b.dispose();
  });
});

describe("bad input", () => {
  it("typed errors naming the fault", async () => {
    const m = await tinyModel(51);
    const good = randomBatch(2, 1, [0, 1]);
    expect(() => m.lossAndGrad(good, 1)).toThrow(/call train\(\) first/);
    expect(() => m.parameters()).toThrow(InputError);
    m.train();
    expect(() => m.lossAndGrad(randomBatch(2, 1, [0, 5]), 1)).toThrow(/example 1 label 5 is outside \[0, 5\)/);
    expect(() => m.lossAndGrad(randomBatch(1, 1, [1.5]), 1)).toThrow(InputError);
    expect(() => m.lossAndGrad([], 1)).toThrow(InputError);
    const wrong = { pixelValues: new Tensor(new Float32Array(C * 9 * 9), [C, 9, 9]), label: 0 };
    expect(() => m.lossAndGrad([good[0]!, wrong], 1)).toThrow(ShapeError);
    expect(() => m.lossAndGrad([good[0]!, wrong], 1)).toThrow(/example 1 pixelValues/);
    const nan = new Float32Array(C * IMG * IMG);
    nan[7] = Number.NaN;
    expect(() => m.evaluate([{ pixelValues: nan, label: 0 }])).toThrow(/pixel 7 = NaN/);
    expect(() => m.train({ maxBatch: 0 })).toThrow(InputError);
    expect(() => m.train({ labelSmoothing: 2 })).toThrow(InputError);
    expect(() => m.train({ ignoreIndex: 3 })).toThrow(InputError);
    // nothing was corrupted: the model still trains
    expect(Number.isFinite(m.lossAndGrad(good, 1).loss)).toBe(true);
    m.dispose();
    expect(() => m.train()).toThrow(/disposed|ViTForImageClassification/);
  });
});
