// CLS maps, nearest upsampling, attention rollout and mean attention distance on hand-made
// attention maps; model-level helpers and classify() on a small random model.
import { createRuntime, InputError, init, ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import {
  attentionRollout,
  clsAttentionMap,
  meanAttentionDistance,
  rolloutMap,
  thresholdAttention,
  upsampleNearest,
} from "../src/introspection.js";
import { ViTForImageClassification } from "../src/vit-model.js";
import { tensorSource } from "../src/weights.js";
import { hfConfigJson, type OracleConfig, randomWeights } from "./oracle.js";

/** [1, H, T, T] from per-head T×T arrays. */
const attn = (...heads: number[][][]) => {
  const T = heads[0]!.length;
  return new Tensor(Float32Array.from(heads.flat(2)), [1, heads.length, T, T]);
};
const uniform = (T: number) => Array.from({ length: T }, () => new Array(T).fill(1 / T));
const identity = (T: number) =>
  Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));

describe("clsAttentionMap / upsampleNearest", () => {
  it("takes row 0 without renormalising, patches row-major on the grid", () => {
    const a = identity(5);
    a[0] = [0.2, 0.1, 0.2, 0.3, 0.2];
    const m = clsAttentionMap(attn(a, uniform(5)), [2, 2]);
    expect(m.shape).toEqual([1, 2, 2, 2]);
    expect(Array.from(m.data)).toEqual(Array.from(Float32Array.from([0.1, 0.2, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2])));
    expect(() => clsAttentionMap(attn(a), [3, 2])).toThrow(ShapeError);
  });

  it("upsamples by whole patches (DINO's scale_factor = patch size)", () => {
    const m = new Tensor(Float32Array.from([1, 2, 3, 4]), [1, 2, 2]);
    const u = upsampleNearest(m, 4, 6);
    expect(u.shape).toEqual([1, 4, 6]);
    expect(Array.from(u.data)).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
    expect(() => upsampleNearest(m, 0, 2)).toThrow(InputError);
  });
});

describe("thresholdAttention (DINO masks)", () => {
  it("keeps the largest weights holding the requested share of the mass, per map", () => {
    // masses 0.1, 0.4, 0.2, 0.3: the top two (0.4 + 0.3 = 0.7) hold ≥ 60 %; with 0.75 the top three
    const m = new Tensor(Float32Array.from([0.1, 0.4, 0.2, 0.3, 1, 0, 0, 0]), [2, 2, 2]);
    const t = thresholdAttention(m, 0.6);
    expect(t.dtype).toBe("bool");
    expect(t.shape).toEqual([2, 2, 2]);
    expect(Array.from(t.data)).toEqual([0, 1, 0, 1, 1, 0, 0, 0]);
    expect(Array.from(thresholdAttention(m, 0.75).data.subarray(0, 4))).toEqual([0, 1, 1, 1]);
    expect(Array.from(thresholdAttention(m, 0).data)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => thresholdAttention(m, 2)).toThrow(InputError);
  });
});

describe("attentionRollout (Abnar & Zuidema)", () => {
  it("identity attention rolls out to the identity", () => {
    const r = attentionRollout([attn(identity(3)), attn(identity(3))]);
    expect(Array.from(r.data)).toEqual(identity(3).flat());
  });

  it("two uniform layers: (½U + ½I)² = ¾U + ¼I", () => {
    const T = 4;
    const r = attentionRollout([attn(uniform(T)), attn(uniform(T))]);
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) expect(r.data[i * T + j]).toBeCloseTo(0.75 / T + (i === j ? 0.25 : 0), 6);
    const map = rolloutMap(r, [1, 3], { normalize: true });
    expect(map.shape).toEqual([1, 1, 3]);
    expect(Array.from(map.data)).toEqual([1, 1, 1]);
  });

  it("fuses heads by mean, max or min; a single layer is ½(fused + I) row-normalised", () => {
    const h1 = [
      [1, 0],
      [0, 1],
    ];
    const h2 = [
      [0, 1],
      [1, 0],
    ];
    const mean = attentionRollout([attn(h1, h2)]);
    expect(Array.from(mean.data)).toEqual([0.75, 0.25, 0.25, 0.75]);
    const max = attentionRollout([attn(h1, h2)], { headFusion: "max" });
    // max = all ones; + I = [[2,1],[1,2]] / 3
    expect(max.data[0]).toBeCloseTo(2 / 3, 6);
    expect(max.data[1]).toBeCloseTo(1 / 3, 6);
    const min = attentionRollout([attn(h1, h2)], { headFusion: "min" });
    expect(Array.from(min.data)).toEqual([1, 0, 0, 1]);
    expect(() => attentionRollout([])).toThrow(InputError);
    expect(() => attentionRollout([attn(h1)], { discardRatio: 1 })).toThrow(InputError);
  });

  it("discardRatio zeroes the smallest weights but never CLS→CLS", () => {
    const a = [
      [0.1, 0.9],
      [0.5, 0.5],
    ];
    const r = attentionRollout([attn(a)], { discardRatio: 0.25 });
    // the smallest weight (0.1, CLS→CLS) is protected; the next smallest (0.5) is dropped
    expect(r.data[0]).toBeCloseTo((0.1 + 1) / 2, 6);
    expect(r.data[1]).toBeCloseTo(0.9 / 2, 6);
    expect(r.data[2]! + r.data[3]!).toBeCloseTo(1, 6);
  });
});

describe("meanAttentionDistance", () => {
  it("attending to oneself is distance 0; one patch is 0", () => {
    const d = meanAttentionDistance([attn(identity(5), identity(5))], [2, 2], 16);
    expect(Array.from(d.data)).toEqual([0, 0]);
    expect(Array.from(meanAttentionDistance([attn(uniform(2))], [1, 1], 16).data)).toEqual([0]);
  });

  it("uniform attention on a 2x2 grid: 0.2·(0 + 16 + 16 + 16√2) per query, CLS not renormalised", () => {
    const want = 0.2 * (32 + 16 * Math.SQRT2);
    const d = meanAttentionDistance([attn(uniform(5)), attn(identity(5))], [2, 2], 16);
    expect(d.shape).toEqual([1, 2, 1]);
    expect(d.data[0]).toBeCloseTo(want, 4);
    expect(d.data[1]).toBe(0);
  });

  it("a 1x3 grid attending to the far end: rows use gw for (r, c)", () => {
    // queries 0, 1, 2 attend fully to patch 2: distances 2p, p, 0 → mean p
    const T = 4;
    const a = Array.from({ length: T }, () => [0, 0, 0, 1]);
    const d = meanAttentionDistance([attn(a)], [1, 3], 10);
    expect(d.data[0]).toBeCloseTo(10, 5);
    expect(() => meanAttentionDistance([attn(a)], [2, 2], 10)).toThrow(ShapeError);
  });
});

describe("model helpers and classify()", () => {
  const c: OracleConfig = {
    D: 12,
    L: 3,
    H: 3,
    I: 20,
    p: 4,
    C: 3,
    image: 8,
    labels: 5,
    eps: 1e-12,
    act: "gelu",
    qkvBias: true,
  };
  const weights = tensorSource(randomWeights(c, 5));

  it("classify(RGBA image, { topK }) = softmax of the logits of the preprocessed image, with id2label", async () => {
    await init({ backend: "ref" });
    const m = await ViTForImageClassification.fromPretrained(
      { config: hfConfigJson(c), weights, preprocessor: { size: { height: 8, width: 8 }, resample: 3 } },
      { runtime: createRuntime({ backend: "ref" }) },
    );
    const img = {
      data: Uint8ClampedArray.from({ length: 11 * 13 * 4 }, (_, i) => (i * 37) % 256),
      width: 13,
      height: 11,
    };
    const top = await m.classify(img, { topK: 3 });
    expect(top.length).toBe(3);
    const { logits } = m.forward(m.processor.preprocess(img));
    const l = Array.from(logits.data);
    const z = l.reduce((s, v) => s + Math.exp(v), 0);
    const order = l.map((_, i) => i).sort((i, j) => l[j]! - l[i]!);
    top.forEach((p, r) => {
      expect(p.index).toBe(order[r]);
      expect(p.label).toBe(`class_${order[r]}`);
      expect(p.score).toBeCloseTo(Math.exp(l[order[r]!]!) / z, 6);
    });
    const all = await m.classify([img, img], { topK: 99 });
    expect(all.length).toBe(2);
    expect(all[1]!.length).toBe(5);
    expect(all[1]!.reduce((s, p) => s + p.score, 0)).toBeCloseTo(1, 6);
    await expect(m.classify(img, { topK: 0 })).rejects.toThrow(InputError);
    await expect(m.classify({ data: new Uint8Array(10), width: 2, height: 2 })).rejects.toThrow(InputError);
  });

  it("clsAttention / attentionRollout / meanAttentionDistance agree with the free functions", async () => {
    await init({ backend: "ref" });
    const m = await ViTForImageClassification.fromPretrained({ config: hfConfigJson(c), weights });
    const x = new Tensor(
      Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i)),
      [1, 3, 8, 8],
    );
    const out = m.forward(x, { outputAttentions: true });
    const cls = await m.clsAttention(x, { layer: 1 });
    expect(Array.from(cls.grid.data)).toEqual(Array.from(clsAttentionMap(out.attentions![1]!, out.grid).data));
    expect(cls.image.shape).toEqual([1, 3, 8, 8]);
    const last = await m.clsAttention(x);
    expect(Array.from(last.grid.data)).toEqual(Array.from(clsAttentionMap(out.attentions![2]!, out.grid).data));
    await expect(m.clsAttention(x, { layer: 3 })).rejects.toThrow(InputError);
    const ro = await m.attentionRollout(x);
    expect(Array.from(ro.rollout.data)).toEqual(Array.from(attentionRollout(out.attentions!).data));
    expect(Math.max(...ro.map.data)).toBeCloseTo(1, 6);
    const d = await m.meanAttentionDistance(x);
    expect(d.shape).toEqual([1, 3, 3]);
    expect(Array.from(d.data)).toEqual(Array.from(meanAttentionDistance(out.attentions!, out.grid, 4).data));
    // every attention row is a distribution
    for (const a of out.attentions!) {
      const T = a.shape[2]!;
      for (let r = 0; r < a.size / T; r++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += a.data[r * T + j]!;
        expect(s).toBeCloseTo(1, 5);
      }
    }
  });
});
