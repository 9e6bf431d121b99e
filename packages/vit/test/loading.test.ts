// Loading ViT checkpoints that do not fit their config: a config asking for far more layers than
// the file holds fails at once (it used to build every expected name first: a heap out-of-memory
// at num_hidden_layers 1e6), and unused tensors are a WeightsError unless `strict: false`.
import { createRuntime, init, Tensor, WeightsError } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { ViTForImageClassification, ViTModel } from "../src/vit-model.js";
import { tensorSource } from "../src/weights.js";
import { hfConfigJson, type OracleConfig, randomPixels, randomWeights, toTimm } from "./oracle.js";

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

beforeAll(async () => {
  await init({ backend: "ref" });
});

async function errOf(p: Promise<unknown>): Promise<WeightsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("expected a WeightsError");
}

describe("ViT loading", () => {
  test("num_hidden_layers 1e6: a WeightsError in milliseconds, naming the first missing layer", async () => {
    const weights = tensorSource(randomWeights(A, 1));
    for (const num_hidden_layers of [1e6, 1e7]) {
      const t0 = performance.now();
      const e = await errOf(
        ViTForImageClassification.fromPretrained({ config: { ...hfConfigJson(A), num_hidden_layers }, weights }),
      );
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(e.message).toContain(`num_hidden_layers ${num_hidden_layers}`);
      expect(e.names).toEqual(["vit.encoder.layer.2.layernorm_before.weight"]);
    }
  });

  test("fewer layers than the checkpoint: unused tensors are a WeightsError; strict: false loads", async () => {
    const config = { ...hfConfigJson(A), num_hidden_layers: 1 };
    const weights = tensorSource(randomWeights(A, 2));
    const e = await errOf(ViTForImageClassification.fromPretrained({ config, weights }));
    expect(e.message).toContain('unexpected "vit.encoder.layer.1.layernorm_before.weight"');
    expect(e.names.filter((n) => n.startsWith("vit.encoder.layer.1."))).toHaveLength(16);
    const m = await ViTForImageClassification.fromPretrained({ config, weights }, { strict: false });
    expect(m.config.num_hidden_layers).toBe(1);
    expect(m.forward(randomPixels(1, 3, 9, 9, 3)).logits.shape).toEqual([1, 4]);
  });

  test("the extras HF ignores stay accepted in strict mode (mask_token, a classifier's pooler, a backbone's classifier)", async () => {
    const w = new Map(randomWeights(A, 3));
    w.set("vit.embeddings.mask_token", new Tensor(new Float32Array(12), [1, 1, 12], "f32"));
    w.set("vit.pooler.dense.weight", new Tensor(new Float32Array(144), [12, 12], "f32"));
    w.set("vit.pooler.dense.bias", new Tensor(new Float32Array(12), [12], "f32"));
    await ViTForImageClassification.fromPretrained({ config: hfConfigJson(A), weights: tensorSource(w) });
    const { id2label: _, label2id: __, ...backbone } = hfConfigJson(A);
    await ViTModel.fromPretrained({ config: backbone, weights: tensorSource(w) });
  });

  test("timm names: a stray tensor is a WeightsError; strict: false ignores it", async () => {
    const timm = new Map(toTimm(A, randomWeights(A, 4)));
    timm.set("blocks.0.attn.extra", new Tensor(new Float32Array(3), [3], "f32"));
    const e = await errOf(ViTForImageClassification.fromTimm({ weights: tensorSource(timm), numHeads: 3 }));
    expect(e.names).toEqual(["blocks.0.attn.extra"]);
    const m = await ViTForImageClassification.fromTimm(
      { weights: tensorSource(timm), numHeads: 3 },
      { strict: false, runtime: createRuntime() },
    );
    expect(m.config.num_hidden_layers).toBe(2);
  });
});
