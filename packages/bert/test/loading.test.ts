// Loading BERT checkpoints that do not fit their config: a config asking for far more layers than
// the file holds fails at once (before the expected names of every layer are listed), and unused
// tensors under the model's prefix are a WeightsError unless `strict: false`.
import { init, Tensor, tensorSource, WeightsError } from "@wasmformer/core";
import { beforeAll, describe, expect, it } from "vitest";
import { BertModel } from "../src/bert-model.js";
import { type Cfg, configJson, randomWeights, withPrefix } from "./oracle.js";

const C: Cfg = { V: 13, D: 8, L: 2, H: 2, I: 6, P: 5, types: 2, eps: 1e-12, act: "gelu" };

beforeAll(async () => {
  await init({ backend: "ref" });
});

async function weightsError(p: Promise<unknown>): Promise<WeightsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("expected a WeightsError");
}

describe("BERT loading", () => {
  it("num_hidden_layers 1e6: a WeightsError in milliseconds, naming the first missing layer", async () => {
    const w = tensorSource(withPrefix(randomWeights(C, 1), "bert."));
    const t0 = performance.now();
    const e = await weightsError(BertModel.fromWeights({ ...configJson(C), num_hidden_layers: 1e6 }, w));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e.names).toEqual(["bert.encoder.layer.2.attention.self.query.weight"]);
  });

  it("fewer layers than the checkpoint: a WeightsError naming the unused tensors; strict: false loads", async () => {
    const w = tensorSource(withPrefix(randomWeights(C, 2), "bert."));
    const cfg = { ...configJson(C), num_hidden_layers: 1 };
    const e = await weightsError(BertModel.fromWeights(cfg, w));
    expect(e.names.length).toBeGreaterThan(0);
    expect(e.names.every((n) => n.startsWith("bert.encoder.layer.1."))).toBe(true);
    const m = await BertModel.fromWeights(cfg, w, { strict: false });
    expect(m.unusedWeights).toEqual(expect.arrayContaining(e.names));
    // the extras FORMAT.md §6.16 lists stay accepted in strict mode
    const extra = withPrefix(randomWeights(C, 3), "bert.");
    extra.set("bert.embeddings.position_ids", new Tensor(Int32Array.from([0, 1, 2, 3, 4]), [1, 5], "i32"));
    extra.set("cls.predictions.bias", new Tensor(new Float32Array(13), [13], "f32"));
    await BertModel.fromWeights(configJson(C), tensorSource(extra));
  });
});
