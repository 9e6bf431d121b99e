// Hostile and careless use of a ViT: introspection options that are not allowed, non-finite pixels
// (Tensor and image paths), dispose() (memory handed to the next model, typed errors afterwards),
// and interleaved async calls on one model giving the sequential results.
import {
  createRuntime,
  DisposedError,
  InputError,
  init,
  type Runtime,
  ShapeError,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  attentionRollout,
  clsAttentionMap,
  meanAttentionDistance,
  rolloutMap,
  thresholdAttention,
  upsampleNearest,
} from "../src/introspection.js";
import { ViTForImageClassification, ViTModel } from "../src/vit-model.js";
import { tensorSource } from "../src/weights.js";
import { hfConfigJson, type OracleConfig, randomPixels, randomWeights } from "./oracle.js";

const C: OracleConfig = {
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
const weights = tensorSource(randomWeights(C, 7));
const load = (runtime?: Runtime, preprocessor: unknown = { size: { height: 8, width: 8 }, resample: 3 }) =>
  ViTForImageClassification.fromPretrained(
    { config: hfConfigJson(C), weights, preprocessor },
    runtime ? { runtime } : {},
  );

/** An RGBA image `w`×`h` with deterministic samples. */
const image = (w: number, h: number, seed: number) => ({
  data: Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i * 37 + seed * 101) % 256),
  width: w,
  height: h,
});

/** The error `f` throws or rejects with. */
async function caught(f: () => unknown): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

afterAll(() => init({ backend: "auto" }));

describe("introspection options and arguments", () => {
  const a = new Tensor(new Float32Array(2 * 5 * 5).fill(0.2), [1, 2, 5, 5]);

  it("attentionRollout: headFusion, discardRatio, layers and unknown options are InputErrors naming them", async () => {
    const bad = async (opts: unknown, re: RegExp) => {
      const e = await caught(() => attentionRollout([a, a], opts as object));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toMatch(re);
    };
    await bad({ headFusion: "x" }, /headFusion must be one of "mean", "max", "min", got "x"/);
    await bad({ headFusion: "MEAN" }, /headFusion .*got "MEAN"/);
    await bad({ headFusion: null }, /headFusion .*got null/);
    await bad({ discardRatio: "0.5" }, /discardRatio must be a number in \[0, 1\), got "0.5"/);
    await bad({ discardRatio: Number.NaN }, /discardRatio .*got NaN/);
    await bad({ discardRatio: -0.1 }, /discardRatio/);
    await bad({ layers: "01" }, /layers must be an array of layer indices, got "01"/);
    await bad({ layers: [0, 1.5] }, /layers\[1\] = 1.5 is not a layer index 0…1/);
    await bad({ layers: [2] }, /layers\[0\] = 2 is not a layer index 0…1/);
    await bad({ layers: ["0"] }, /layers\[0\] = "0"/);
    await bad({ headfusion: "max" }, /unknown option "headfusion" \(allowed: headFusion, discardRatio, layers\)/);
    await bad(null, /options must be an object, got null/);
    await bad("max", /options must be an object/);
    expect(() => attentionRollout("x" as unknown as Tensor[])).toThrow(/attentions must be an array/);
    // what is allowed still works
    for (const headFusion of ["mean", "max", "min"] as const)
      expect(attentionRollout([a, a], { headFusion, discardRatio: 0.5, layers: [1, 0] }).shape).toEqual([1, 5, 5]);
    expect(attentionRollout([a], undefined).shape).toEqual([1, 5, 5]);
  });

  it("the other functions: tensors, grids, sizes, thresholds and options of the wrong kind are InputErrors", () => {
    const expectInput = (f: () => unknown, re: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(re);
    };
    expectInput(() => clsAttentionMap([a] as unknown as Tensor, [2, 2]), /attentions must be a Tensor, got an array/);
    expectInput(
      () => clsAttentionMap(new Tensor(new Int32Array(50), [1, 2, 5, 5], "i32"), [2, 2]),
      /must be an f32 Tensor, got i32/,
    );
    expectInput(() => clsAttentionMap(a, 4 as unknown as [number, number]), /grid must be \[gh, gw\]/);
    expectInput(() => upsampleNearest("map" as unknown as Tensor, 4, 4), /upsampleNearest map must be a Tensor/);
    expectInput(() => upsampleNearest(new Tensor(new Float32Array(4), [2, 2]), 4.5, 4), /output size/);
    expectInput(
      () => thresholdAttention(new Tensor(new Float32Array(4), [2, 2]), "0.5" as unknown as number),
      /threshold must be a number in \[0, 1\], got "0.5"/,
    );
    expectInput(() => thresholdAttention(new Tensor(new Float32Array(4), [2, 2]), Number.NaN), /threshold/);
    const r = attentionRollout([a]);
    expectInput(
      () => rolloutMap(r, [2, 2], { normalize: "yes" } as unknown as { normalize: boolean }),
      /normalize must be a boolean, got "yes"/,
    );
    expectInput(
      () => rolloutMap(r, [2, 2], { normalise: true } as object),
      /unknown option "normalise" \(allowed: normalize\)/,
    );
    expectInput(
      () => meanAttentionDistance([a], [2, 2], Number.POSITIVE_INFINITY),
      /patchSize must be a positive finite number, got Infinity/,
    );
    expectInput(() => meanAttentionDistance([a], [2, 2], "16" as unknown as number), /patchSize .*got "16"/);
    expectInput(() => meanAttentionDistance(a as unknown as Tensor[], [2, 2], 16), /attentions must be an array/);
    // masks of any dtype upsample (DINO: thresholded maps brought to image pixels)
    const mask = thresholdAttention(new Tensor(Float32Array.from([0.1, 0.7, 0.1, 0.1]), [2, 2]), 0.5);
    expect(Array.from(upsampleNearest(mask, 4, 4).data)).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // shapes are still ShapeErrors
    expect(() => clsAttentionMap(a, [3, 2])).toThrow(ShapeError);
  });

  it("model helpers check their options before running the model", async () => {
    await init({ backend: "ref" });
    const m = await load();
    const x = randomPixels(1, 3, 8, 8, 1);
    let e = await caught(() => m.attentionRollout(x, { headFusion: "x" as "mean" }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/headFusion must be one of "mean", "max", "min", got "x"/);
    e = await caught(() => m.attentionRollout(x, { layers: [3] }));
    expect(e.message).toMatch(/layers\[0\] = 3 is not a layer index 0…2/);
    e = await caught(() => m.clsAttention(x, { layer: "1" as unknown as number }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/layer must be an integer layer index, got "1"/);
    e = await caught(() => m.clsAttention(x, { layers: 1 } as object));
    expect(e.message).toMatch(/unknown option "layers" \(allowed: layer\)/);
    expect(() => m.forward(x, null as unknown as object)).toThrow(/forward: options must be an object, got null/);
    e = await caught(() => m.classify(x, null as unknown as object));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/classify: options must be an object/);
    expect(() => m.forward(x, { outputAttentions: "yes" as unknown as boolean })).toThrow(
      /forward: outputAttentions must be a boolean, got "yes"/,
    );
    expect((await m.attentionRollout(x, { headFusion: "max", layers: [0, 2] })).map.shape).toEqual([1, 2, 2]);
    m.dispose();
  });
});

describe("non-finite pixels are rejected, as GPT-2 rejects non-finite embeddings", () => {
  it("Tensor path: forward, classify and the helpers name the first bad index", async () => {
    await init({ backend: "ref" });
    const m = await load();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const x = randomPixels(2, 3, 8, 8, 2);
      x.data[1 * 192 + 2 * 64 + 3 * 8 + 4] = bad; // [1, 2, 3, 4]
      x.data[1 * 192 + 2 * 64 + 5 * 8 + 6] = bad; // a later one is not the one reported
      const msg = `pixel_values[1, 2, 3, 4] = ${bad} is not finite`;
      const e = await caught(() => m.forward(x));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toBe(msg);
      for (const f of [
        () => m.classify(x),
        () => m.attentionRollout(x),
        () => m.clsAttention(x),
        () => m.meanAttentionDistance(x),
      ]) {
        const e2 = await caught(f);
        expect(e2).toBeInstanceOf(InputError);
        expect(e2.message).toBe(msg);
      }
    }
    m.dispose();
  });

  it("image path: a preprocessor config that overflows float32 names the pixel, the sample and the settings", async () => {
    await init({ backend: "ref" });
    const m = await load(undefined, { size: { height: 8, width: 8 }, rescale_factor: 1e39, do_normalize: false });
    const px = new Uint8ClampedArray(8 * 8 * 4);
    px[(2 * 8 + 3) * 4 + 1] = 7; // row 2, column 3, green: the first nonzero sample
    const img = { data: px, width: 8, height: 8 };
    let e = await caught(() => m.classify(img));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(
      /^pixel_values\[1, 2, 3\] = Infinity is not finite \(sample 7 after rescale_factor 1e\+39/,
    );
    e = await caught(() => m.pixelValues([{ data: new Uint8ClampedArray(8 * 8 * 4), width: 8, height: 8 }, img]));
    expect(e.message).toMatch(/^image 1: pixel_values\[1, 2, 3\] = Infinity/);
    m.dispose();
  });
});

describe.each(["ref", "auto"] as const)("dispose() on %s", (backend) => {
  it("frees the runtime at once: the next model gets the same runtime and computes the same answers", async () => {
    await init({ backend });
    const x = randomPixels(2, 3, 8, 8, 3);
    const m = await load();
    const want = m.forward(x, { outputAttentions: true });
    const rt = m.rt;
    m.dispose();
    m.dispose(); // twice is fine
    expect(createRuntime()).toBe(rt);
    // give it back and load a model into it: the same memory, the same answers
    const m1 = await load(rt);
    expect(Array.from(m1.forward(x).logits.data)).toEqual(Array.from(want.logits!.data));
    m1.dispose(); // the runtime was passed in: it stays the caller's
    expect(createRuntime()).not.toBe(rt);
    const m2 = await load();
    expect(m2.rt).not.toBe(rt); // rt was never released again
    const got = m2.forward(x, { outputAttentions: true });
    expect(Array.from(got.logits.data)).toEqual(Array.from(want.logits!.data));
    m2.dispose();
    const m3 = await load();
    expect(m3.rt).toBe(m2.rt);
    expect(Array.from(m3.forward(x).logits.data)).toEqual(Array.from(want.logits!.data));
    m3.dispose();
  });

  it("every later call is a DisposedError naming the class; a call in flight rejects with it too", async () => {
    await init({ backend });
    const x = randomPixels(1, 3, 8, 8, 4);
    const m = await load();
    const inFlight = m.classify(image(11, 9, 2)); // awaits the preprocessing, then runs the model
    m.dispose();
    const e = await caught(() => inFlight);
    expect(e).toBeInstanceOf(DisposedError);
    expect(e.message).toMatch(/^ViTForImageClassification has been disposed/);
    for (const f of [
      () => m.forward(x),
      () => m.classify(x),
      () => m.pixelValues(image(8, 8, 1)),
      () => m.clsAttention(x),
      () => m.attentionRollout(x),
      () => m.meanAttentionDistance(x),
      () => m.heapBytes,
    ]) {
      const e2 = await caught(f);
      expect(e2).toBeInstanceOf(DisposedError);
      expect(e2.message).toMatch(/ViTForImageClassification/);
    }
    const backbone = await ViTModel.fromPretrained({ config: hfConfigJson(C), weights });
    backbone.dispose();
    expect(() => backbone.forward(x)).toThrow(/^ViTModel has been disposed/);
  });
});

describe("interleaved calls on one model", () => {
  it("async helpers and classify() under Promise.all give the sequential answers (other sizes, batches)", async () => {
    await init({ backend: "auto" });
    const m = await load();
    const xs = [randomPixels(2, 3, 8, 8, 5), randomPixels(1, 3, 12, 8, 6), randomPixels(3, 3, 4, 4, 7)];
    const imgs = [image(13, 11, 1), image(8, 8, 2), image(20, 9, 3)];
    const calls = (): (() => Promise<unknown>)[] => [
      () => m.classify(imgs[0]!, { topK: 3 }),
      () => m.attentionRollout(xs[0]!, { headFusion: "max" }),
      () => m.classify([imgs[1]!, imgs[2]!]),
      () => m.clsAttention(xs[1]!),
      () => m.meanAttentionDistance(xs[2]!),
      () => m.attentionRollout(imgs[2]!),
      () => Promise.resolve(m.forward(xs[1]!, { outputHiddenStates: true })),
      () => m.clsAttention([imgs[0]!, imgs[0]!], { layer: 0 }),
    ];
    const sequential: unknown[] = [];
    for (const f of calls()) sequential.push(await f());
    const all = await Promise.all(calls().map((f) => f()));
    expect(all).toEqual(sequential);
    // reversed and doubled: still each call's own answer
    const twice = [...calls(), ...calls()].reverse();
    const got = await Promise.all(twice.map((f) => f()));
    expect(got).toEqual([...sequential, ...sequential].reverse());
    m.dispose();
  });
});

describe("a config whose num_labels asks for the impossible", () => {
  it("num_labels 1e8 without id2label is a WeightsError in milliseconds, not a heap out-of-memory", async () => {
    const { id2label: _, ...noNames } = hfConfigJson(C);
    const t0 = performance.now();
    const e = await caught(() =>
      ViTForImageClassification.fromPretrained({ config: { ...noNames, num_labels: 1e8 }, weights }),
    );
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toMatch(/classifier\.weight/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("labels of a config with only num_labels are LABEL_i (id2label and classify)", async () => {
    const { id2label: _, ...noNames } = hfConfigJson(C);
    const m = await ViTForImageClassification.fromPretrained({ config: { ...noNames, num_labels: C.labels }, weights });
    expect(m.id2label).toEqual({ 0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3", 4: "LABEL_4" });
    const top = await m.classify(randomPixels(1, 3, 8, 8, 3), { topK: 5 });
    expect(top.map((p) => p.label).sort()).toEqual(["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4"]);
    m.dispose();
  });
});
