// ViTModel / ViTForImageClassification against the float64 oracle (test/oracle.ts) on random
// small configs: odd sizes, batch > 1, one-patch images, interpolated positions, timm names.
import {
  ConfigError,
  createRuntime,
  InputError,
  init,
  ShapeError,
  Tensor,
  WasmformerError,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { ViTForImageClassification, ViTModel } from "../src/vit-model.js";
import { tensorSource } from "../src/weights.js";
import {
  hfConfigJson,
  type OracleConfig,
  oracleForward,
  randomPixels,
  randomWeights,
  ratio,
  toTimm,
} from "./oracle.js";

const A: OracleConfig = {
  D: 12,
  L: 2,
  H: 3,
  I: 20,
  p: 3,
  C: 3,
  image: 9,
  labels: 4,
  eps: 1e-6,
  act: "gelu",
  qkvBias: true,
};
const ONE: OracleConfig = {
  D: 8,
  L: 2,
  H: 2,
  I: 16,
  p: 4,
  C: 3,
  image: 4,
  labels: 2,
  eps: 1e-12,
  act: "gelu",
  qkvBias: true,
};
const ODD: OracleConfig = {
  D: 10,
  L: 3,
  H: 5,
  I: 7,
  p: 5,
  C: 1,
  image: 10,
  labels: 3,
  eps: 1e-5,
  act: "gelu_new",
  qkvBias: false,
};

const flat3 = (x: number[][][]) => x.flat(2);

function check(c: OracleConfig, m: ViTModel, px: Tensor) {
  const w = randomWeightsCache.get(c)!;
  const want = oracleForward(c, w, px);
  const got = m.forward(px, { outputAttentions: true });
  const B = px.shape[0]!;
  const T = want.hidden[0]!.length;
  expect(got.lastHiddenState.shape).toEqual([B, T, c.D]);
  expect(ratio(got.lastHiddenState.data, flat3(want.hidden))).toBeLessThanOrEqual(1);
  expect(got.logits!.shape).toEqual([B, c.labels]);
  expect(ratio(got.logits!.data, want.logits.flat())).toBeLessThanOrEqual(1);
  expect(got.attentions!.length).toBe(c.L);
  got.attentions!.forEach((a, l) => {
    expect(a.shape).toEqual([B, c.H, T, T]);
    expect(ratio(a.data, want.attn[l]!.flat(3))).toBeLessThanOrEqual(1);
  });
  return got;
}

const randomWeightsCache = new Map<OracleConfig, Map<string, Tensor>>([
  [A, randomWeights(A, 1)],
  [ONE, randomWeights(ONE, 2)],
  [ODD, randomWeights(ODD, 3)],
]);

const load = (c: OracleConfig, backend: "ref" | "wasm-simd" | "auto") =>
  ViTForImageClassification.fromPretrained(
    { config: hfConfigJson(c), weights: tensorSource(randomWeightsCache.get(c)!) },
    { runtime: createRuntime({ backend: backend === "ref" ? "ref" : undefined }) },
  );

/** hidden and intermediate sizes multiples of 8: the encoder weights are repacked for gemmPacked */
const P8: OracleConfig = { ...ONE, D: 16, H: 2, I: 24, image: 8 };
randomWeightsCache.set(P8, randomWeights(P8, 7));

describe.each(["ref", "wasm-simd", "auto"] as const)("pre-packed encoder weights (%s backend)", (backend) => {
  it("packed (sizes multiples of 8) and plain weights give the same logits", async () => {
    await init({ backend });
    const weights = randomWeightsCache.get(P8)!;
    const x = randomPixels(2, 3, 8, 8, 70);
    const model = (packWeights: boolean) =>
      ViTForImageClassification.fromPretrained(
        { config: hfConfigJson(P8), weights: tensorSource(weights) },
        { runtime: createRuntime({ backend: backend === "ref" ? "ref" : undefined }), packWeights },
      );
    const packedModel = await model(true);
    const packed = packedModel.forward(x).logits.data;
    const plain = (await model(false)).forward(x).logits.data;
    // the same K blocks and summation order: equal up to the last bits
    for (let i = 0; i < plain.length; i++) expect(packed[i]).toBeCloseTo(plain[i]!, 5);
    check(P8, packedModel, x); // and right, against the float64 oracle
  });
});

describe.each(["ref", "wasm-simd", "auto"] as const)("ViT vs float64 oracle (%s backend)", (backend) => {
  it("native size, batch 2", async () => {
    await init({ backend });
    const m = await load(A, backend);
    if (backend === "ref") expect(m.rt.backend).toBe("ref");
    else expect(m.rt.backend).toMatch(/^wasm-/);
    check(A, m, randomPixels(2, 3, 9, 9, 10));
  });

  it("interpolated positions: 12x15 image (4x5 grid), and 3x3 (one patch)", async () => {
    await init({ backend });
    const m = await load(A, backend);
    const out = check(A, m, randomPixels(1, 3, 12, 15, 11));
    expect(out.grid).toEqual([4, 5]);
    expect(check(A, m, randomPixels(2, 3, 3, 3, 12)).grid).toEqual([1, 1]);
  });

  it("hidden states (embeddings + every layer) on request", async () => {
    await init({ backend });
    const m = await load(A, backend);
    const x = randomPixels(2, 3, 9, 9, 50);
    const want = oracleForward(A, randomWeightsCache.get(A)!, x);
    const out = m.forward(x, { outputHiddenStates: true });
    expect(out.hiddenStates!.length).toBe(A.L + 1);
    out.hiddenStates!.forEach((h, l) => {
      expect(h.shape).toEqual([2, 10, A.D]);
      expect(ratio(h.data, flat3(want.states[l]!))).toBeLessThanOrEqual(1);
    });
    expect(m.forward(x).hiddenStates).toBeUndefined();
  });

  it("partial patches are dropped (10x11 image → native 3x3 grid)", async () => {
    await init({ backend });
    const m = await load(A, backend);
    expect(check(A, m, randomPixels(1, 3, 10, 11, 13)).grid).toEqual([3, 3]);
  });

  it("one-patch model (image = patch), batch 3", async () => {
    await init({ backend });
    const m = await load(ONE, backend);
    check(ONE, m, randomPixels(3, 3, 4, 4, 14));
  });

  it("odd sizes: 1 channel, head size 2, no qkv bias, gelu_new", async () => {
    await init({ backend });
    const m = await load(ODD, backend);
    check(ODD, m, randomPixels(2, 1, 10, 10, 15));
  });

  it("plans are reused and re-made: same result across sizes and attention modes", async () => {
    await init({ backend });
    const m = await load(A, backend);
    const x = randomPixels(2, 3, 9, 9, 16);
    const a = m.forward(x);
    expect(a.attentions).toBeUndefined();
    const used = m.heapBytes;
    const b = m.forward(x);
    expect(m.heapBytes).toBe(used);
    expect(Array.from(b.logits.data)).toEqual(Array.from(a.logits.data));
    m.forward(randomPixels(1, 3, 15, 6, 17), { outputAttentions: true });
    const c = m.forward(x);
    expect(Array.from(c.logits.data)).toEqual(Array.from(a.logits.data));
    expect(Array.from(c.lastHiddenState.data)).toEqual(Array.from(a.lastHiddenState.data));
  });

  it("timm names (fused qkv) give the same outputs", async () => {
    await init({ backend });
    const timm = toTimm(A, randomWeightsCache.get(A)!);
    const m = await ViTForImageClassification.fromTimm(
      { weights: tensorSource(timm), numHeads: 3, config: { label_names: ["a", "b", "c", "d"] } },
      { runtime: createRuntime({ backend: backend === "ref" ? "ref" : undefined }), posInterpolation: "bicubic" },
    );
    expect(m.config.num_attention_heads).toBe(3);
    expect(m.config.image_size).toEqual([9, 9]);
    expect(m.id2label).toEqual({ 0: "a", 1: "b", 2: "c", 3: "d" });
    check(A, m, randomPixels(2, 3, 9, 9, 18));
    check(A, m, randomPixels(1, 3, 12, 12, 19));
  });
});

describe("loading from safetensors bytes; HF ViTModel (no prefix, pooler)", () => {
  it("ViTModel without prefix + pooler: tanh(dense(CLS))", async () => {
    await init({ backend: "ref" });
    const hf = randomWeightsCache.get(A)!;
    const bare = new Map<string, Tensor>();
    for (const [n, t] of hf) if (n.startsWith("vit.")) bare.set(n.slice(4), t);
    const pw = randomPixels(1, 1, A.D, A.D, 20).reshape([A.D, A.D]);
    const pb = randomPixels(1, 1, 1, A.D, 21).reshape([A.D]);
    bare.set("pooler.dense.weight", pw);
    bare.set("pooler.dense.bias", pb);
    const bytes = writeSafetensors(Object.fromEntries(bare));
    const cfg = { ...hfConfigJson(A), architectures: ["ViTModel"] };
    const m = await ViTModel.fromPretrained({ config: cfg, weights: bytes });
    expect(m.hasClassifier).toBe(false);
    expect(m.loadMs).toBeGreaterThan(0);
    const x = randomPixels(1, 3, 9, 9, 22);
    const out = m.forward(x);
    expect(out.logits).toBeUndefined();
    const want = oracleForward(A, hf, x);
    expect(ratio(out.lastHiddenState.data, flat3(want.hidden))).toBeLessThanOrEqual(1);
    const cls = want.hidden[0]![0]!;
    const pooled = Array.from({ length: A.D }, (_, o) => {
      let s = pb.data[o]!;
      for (let i = 0; i < A.D; i++) s += pw.data[o * A.D + i]! * cls[i]!;
      return Math.tanh(s);
    });
    expect(ratio(out.poolerOutput!.data, pooled)).toBeLessThanOrEqual(1);
  });
});

describe("typed errors", () => {
  const errOf = async (p: Promise<unknown> | (() => unknown)) => {
    try {
      await (typeof p === "function" ? p() : p);
    } catch (e) {
      return e as Error;
    }
    throw new Error("expected an error");
  };

  it("bad input: wrong channels, too small, wrong rank, wrong dtype", async () => {
    await init({ backend: "ref" });
    const m = await load(A, "ref");
    const e1 = await errOf(() => m.forward(randomPixels(1, 4, 9, 9, 1)));
    expect(e1).toBeInstanceOf(InputError);
    expect(e1.message).toMatch(/4 channels.*num_channels = 3/);
    expect(await errOf(() => m.forward(randomPixels(1, 3, 2, 9, 1)))).toBeInstanceOf(InputError);
    expect(await errOf(() => m.forward(new Tensor(new Float32Array(27), [3, 3, 3])))).toBeInstanceOf(ShapeError);
    expect(await errOf(() => m.forward(new Tensor(new Int32Array(81 * 3), [1, 3, 9, 9])))).toBeInstanceOf(InputError);
  });

  it("config: missing field, heads not dividing, ill-typed, non-square patch", async () => {
    const w = tensorSource(randomWeightsCache.get(A)!);
    for (const [patch, field] of [
      [{ hidden_size: undefined }, "hidden_size"],
      [{ num_attention_heads: 5 }, "num_attention_heads"],
      [{ intermediate_size: "20" }, "intermediate_size"],
      [{ patch_size: [3, 4] }, "patch_size"],
      [{ hidden_act: "mish" }, "hidden_act"],
      [{ patch_size: 12 }, "patch_size"],
    ] as const) {
      const cfg = { ...hfConfigJson(A), ...patch };
      const e = await errOf(ViTForImageClassification.fromPretrained({ config: cfg, weights: w }));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toContain(field);
    }
  });

  it("weights: wrong shape, missing and unexpected tensors listed together", async () => {
    const m = new Map(randomWeightsCache.get(A)!);
    m.delete("vit.encoder.layer.1.output.dense.bias");
    m.set("vit.encoder.layer.0.intermediate.dense.weight", new Tensor(new Float32Array(21 * 12), [21, 12]));
    m.set("vit.encoder.layer.7.foo", new Tensor(new Float32Array(1), [1]));
    const e = (await errOf(
      ViTForImageClassification.fromPretrained({ config: hfConfigJson(A), weights: tensorSource(m) }),
    )) as WeightsError;
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('missing "vit.encoder.layer.1.output.dense.bias"');
    expect(e.message).toContain('"vit.encoder.layer.0.intermediate.dense.weight" has shape [21, 12]');
    expect(e.message).toContain('unexpected "vit.encoder.layer.7.foo"');
    expect(e.names).toEqual(
      expect.arrayContaining([
        "vit.encoder.layer.1.output.dense.bias",
        "vit.encoder.layer.0.intermediate.dense.weight",
        "vit.encoder.layer.7.foo",
      ]),
    );
    // a config with more layers than the checkpoint
    const e2 = await errOf(
      ViTForImageClassification.fromPretrained({
        config: { ...hfConfigJson(A), num_hidden_layers: 3 },
        weights: tensorSource(randomWeightsCache.get(A)!),
      }),
    );
    expect(e2).toBeInstanceOf(WeightsError);
    expect(e2.message).toContain("vit.encoder.layer.2.");
    // classifier size vs id2label
    const e3 = await errOf(
      ViTForImageClassification.fromPretrained({
        config: { ...hfConfigJson(A), id2label: { 0: "x", 1: "y" } },
        weights: tensorSource(randomWeightsCache.get(A)!),
      }),
    );
    expect(e3).toBeInstanceOf(WeightsError);
    expect(e3.message).toContain("classifier.weight");
    // not a ViT at all; malformed safetensors bytes
    expect(
      await errOf(
        ViTModel.fromPretrained({
          config: hfConfigJson(A),
          weights: tensorSource({ "h.0.x": new Tensor(new Float32Array(1), [1]) }),
        }),
      ),
    ).toBeInstanceOf(WeightsError);
    expect(
      await errOf(ViTModel.fromPretrained({ config: hfConfigJson(A), weights: new Uint8Array([1, 2, 3]) })),
    ).toBeInstanceOf(WasmformerError);
  });
});

describe("backbone configs", () => {
  it("ViTModel with a config without labels ignores a classifier in the checkpoint", async () => {
    await init({ backend: "ref" });
    const cfg: Record<string, unknown> = { ...hfConfigJson(A) };
    delete cfg.id2label;
    const m = await ViTModel.fromPretrained({ config: cfg, weights: tensorSource(randomWeightsCache.get(A)!) });
    expect(m.hasClassifier).toBe(false);
    const x = randomPixels(1, 3, 9, 9, 40);
    const want = oracleForward(A, randomWeightsCache.get(A)!, x);
    expect(ratio(m.forward(x).lastHiddenState.data, flat3(want.hidden))).toBeLessThanOrEqual(1);
    await expect(
      ViTForImageClassification.fromPretrained({ config: cfg, weights: tensorSource(randomWeightsCache.get(A)!) }),
    ).rejects.toThrow(ConfigError);
  });
});

describe("shared runtime", () => {
  it("two models in one runtime keep their weights when either re-plans", async () => {
    await init({ backend: "ref" });
    const rt = createRuntime({ backend: "ref" });
    const cfg = hfConfigJson(A);
    const a = await ViTForImageClassification.fromPretrained(
      { config: cfg, weights: tensorSource(randomWeightsCache.get(A)!) },
      { runtime: rt },
    );
    const x = randomPixels(1, 3, 9, 9, 30);
    const before = Array.from(a.forward(x).logits.data);
    const b = await ViTForImageClassification.fromPretrained(
      { config: cfg, weights: tensorSource(randomWeights(A, 99)) },
      { runtime: rt },
    );
    const bOut = Array.from(b.forward(x).logits.data);
    a.forward(randomPixels(2, 3, 12, 12, 31)); // a re-plans while b's weights sit above its old plan
    expect(Array.from(b.forward(x).logits.data)).toEqual(bOut);
    expect(Array.from(a.forward(x).logits.data)).toEqual(before);
  });
});
