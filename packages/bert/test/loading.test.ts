// Loading BERT checkpoints that do not fit their config: a config asking for far more layers than
// the file holds fails at once (before the expected names of every layer are listed), and unused
// tensors under the model's prefix are a WeightsError unless `strict: false`.
import { init, openSafetensors, Tensor, tensorSource, WeightsError, writeSafetensors } from "@wasmformer/core";
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

describe("BERT loading streams the weights into the heap", () => {
  it("each tensor is in the heap before the next one is read; a failed load gives the heap back", async () => {
    const { createRuntime } = await import("@wasmformer/core");
    const rt = await createRuntime();
    const w = withPrefix(randomWeights(C, 4), "bert.");
    const src = await openSafetensors(writeSafetensors(w));
    let base = rt.heap.used();
    let readBytes = 0;
    let streamed = true;
    const spy = {
      names: () => src.names(),
      has: (n: string) => src.has(n),
      info: (n: string) => src.info(n),
      get: async (n: string) => {
        // everything read before this call already sits in the heap (no JS-side gathering first)
        if (rt.heap.used() - base < readBytes) streamed = false;
        const t = await src.get(n);
        readBytes += t.data.byteLength;
        return t;
      },
    };
    // the same through the file's readRaw (what fromPretrained uses): no tensor is decoded in JS
    let decoded = 0;
    const raw = {
      ...spy,
      get: async (n: string) => {
        decoded++;
        return spy.get(n);
      },
      readRaw: (n: string, sink: (b: Uint8Array, at: number) => void) => {
        if (rt.heap.used() - base < readBytes) streamed = false;
        readBytes += src.info(n).byteLength;
        return src.readRaw(n, sink, 64);
      },
    };
    const m = await BertModel.fromWeights(configJson(C), spy, { runtime: rt });
    expect(streamed).toBe(true);
    expect(readBytes).toBeGreaterThan(0);
    // the weights are held once: the heap grew by exactly the bytes read (16-byte aligned blocks)
    expect(rt.heap.used() - base).toBeLessThan(readBytes + 16 * w.size);
    const ref = await BertModel.fromWeights(configJson(C), tensorSource(w));
    const ids = [[1, 2, 3, 4]];
    expect(Array.from(m.forward(ids).lastHiddenState.data)).toEqual(Array.from(ref.forward(ids).lastHiddenState.data));
    base = rt.heap.used();
    readBytes = 0;
    const m2 = await BertModel.fromWeights(configJson(C), raw, { runtime: rt });
    expect(streamed).toBe(true);
    expect(decoded).toBe(0);
    expect(rt.heap.used() - base).toBeLessThan(readBytes + 16 * w.size);
    expect(Array.from(m2.forward(ids).lastHiddenState.data)).toEqual(Array.from(ref.forward(ids).lastHiddenState.data));

    // a tensor whose data disagrees with its header: WeightsError naming it, heap back to where it was
    const used = rt.heap.used();
    const bad = {
      ...spy,
      get: async (n: string) =>
        n.endsWith("layer.1.attention.self.key.weight") ? new Tensor(new Float32Array(3), [3], "f32") : src.get(n),
    };
    const e = await weightsError(BertModel.fromWeights(configJson(C), bad, { runtime: rt }));
    expect(e.names).toEqual(["bert.encoder.layer.1.attention.self.key.weight"]);
    expect(e.message).toMatch(/has shape \[3\], the config needs \[8, 8\]/);
    expect(rt.heap.used()).toBe(used);
  });
});
