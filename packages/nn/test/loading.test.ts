// State dicts that do not fit their module tree: a config asking for far more layers than the
// checkpoint holds stops after MAX_MISSING missing tensors (it used to build every layer first),
// and unused tensors under the prefix are a WeightsError unless `strict: false`.
import { createRefRuntime, WeightsError } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { LSTM } from "../src/rnn.js";
import { loadModule, loadModuleAsync, MAX_MISSING, tensorSource } from "../src/state-dict.js";
import { TransformerEncoder } from "../src/transformer.js";
import { DictBuilder } from "./weights.js";

function errOf(f: () => unknown): WeightsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("expected a WeightsError");
}

async function asyncErrOf(p: Promise<unknown>): Promise<WeightsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("expected a WeightsError");
}

const lstmDict = () => new DictBuilder(1).rnn(4, 3, 5, 2, 1, true).map;
const encoderDict = () => {
  const b = new DictBuilder(2);
  for (let i = 0; i < 2; i++) b.layer(`layers.${i}.`, 8, 16, false);
  return b.map;
};
const enc = (numLayers: number) => ({ dModel: 8, nhead: 2, dimFeedforward: 16, numLayers });

describe("nn state dicts", () => {
  test("num_layers 1e7: a WeightsError after MAX_MISSING missing tensors, in milliseconds", async () => {
    const rt = createRefRuntime();
    const lstm = tensorSource(lstmDict());
    const t0 = performance.now();
    const e = errOf(() =>
      loadModule(lstm, (s) => new LSTM(s, { inputSize: 3, hiddenSize: 5, numLayers: 1e7 }), { runtime: rt }),
    );
    expect(e.message).toContain(`stopped after ${MAX_MISSING} missing tensors`);
    expect(e.names).toContain("weight_ih_l2");
    expect(e.names.length).toBe(MAX_MISSING + 1);
    const e2 = errOf(() =>
      loadModule(tensorSource(encoderDict()), (s) => new TransformerEncoder(s, enc(1e7)), { runtime: rt }),
    );
    expect(e2.names).toContain("layers.2.self_attn.in_proj_weight");
    // 2³² layers used to be a raw RangeError (Array.from({ length }))
    const e4 = errOf(() =>
      loadModule(tensorSource(encoderDict()), (s) => new TransformerEncoder(s, enc(2 ** 32)), { runtime: rt }),
    );
    expect(e4.names).toContain("layers.2.self_attn.in_proj_weight");
    // the lazy path's dry run stops as early
    const e3 = await asyncErrOf(
      loadModuleAsync(
        { names: () => lstm.names(), has: (n) => lstm.has(n), get: async (n) => lstm.get(n) },
        (s) => new LSTM(s, { inputSize: 3, hiddenSize: 5, numLayers: 1e7 }),
        { runtime: rt },
      ),
    );
    expect(e3.message).toContain("stopped after");
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("fewer layers than the checkpoint: unused tensors are a WeightsError; strict: false loads", async () => {
    const rt = createRefRuntime();
    const src = tensorSource(encoderDict());
    const e = errOf(() => loadModule(src, (s) => new TransformerEncoder(s, enc(1)), { runtime: rt }));
    expect(e.names.length).toBe(12);
    expect(e.names.every((n) => n.startsWith("layers.1."))).toBe(true);
    const m = loadModule(src, (s) => new TransformerEncoder(s, enc(1)), { runtime: rt, strict: false });
    expect(m.layers).toHaveLength(1);
    const lstm = tensorSource(lstmDict());
    const make = (s: Parameters<Parameters<typeof loadModule>[1]>[0]) =>
      new LSTM(s, { inputSize: 3, hiddenSize: 5, numLayers: 1 });
    expect((await asyncErrOf(loadModuleAsync(lstm as never, make, { runtime: rt }))).names).toContain("weight_ih_l1");
    expect((await loadModuleAsync(lstm as never, make, { runtime: rt, strict: false })).numLayers).toBe(1);
  });
});
