// State dicts that do not fit their module tree: a config asking for far more layers than the
// checkpoint holds stops after MAX_MISSING missing tensors (it used to build every layer first),
// and unused tensors under the prefix are a WeightsError unless `strict: false`.
import { createRefRuntime, Tensor, WeightsError } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { Linear } from "../src/linear.js";
import { LSTM } from "../src/rnn.js";
import { HeapTensors, loadModule, loadModuleAsync, MAX_MISSING, tensorSource } from "../src/state-dict.js";
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

describe("weights placed in the heap", () => {
  test("loadModuleAsync puts each tensor in the heap before reading the next", async () => {
    const rt = createRefRuntime();
    const dict = lstmDict();
    const base = rt.heap.used();
    let readBytes = 0;
    let streamed = true;
    const src = {
      names: () => [...dict.keys()],
      has: (n: string) => dict.has(n),
      get: async (n: string) => {
        // everything read before this call already sits in the heap (no JS-side gathering first)
        if (rt.heap.used() - base < readBytes) streamed = false;
        const t = dict.get(n)!;
        readBytes += t.data.byteLength;
        return t;
      },
    };
    const opts = { inputSize: 3, hiddenSize: 5, numLayers: 2 };
    const lstm = await loadModuleAsync(src, (s) => new LSTM(s, opts), { runtime: rt });
    expect(streamed).toBe(true);
    const eager = loadModule(tensorSource(dict), (s) => new LSTM(s, opts), { runtime: createRefRuntime() });
    const x = new Tensor(
      Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
      [2, 2, 3],
      "f32",
    );
    expect(Array.from(lstm.forward(x).output.data)).toEqual(Array.from(eager.forward(x).output.data));
    // a failed load on the caller's runtime gives the heap back
    const used = rt.heap.used();
    const e = await asyncErrOf(loadModuleAsync(src, (s) => new LSTM(s, { ...opts, hiddenSize: 6 }), { runtime: rt }));
    expect(e.names).toContain("weight_ih_l0");
    expect(rt.heap.used()).toBe(used);
  });

  test("HeapTensors: placed tensors are used in place, stacked parts are checked by name", async () => {
    const rt = createRefRuntime();
    const t = (shape: number[], v0: number) =>
      new Tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => v0 + i),
        shape,
        "f32",
      );
    const parts = new Map([
      ["q", t([2, 3], 0)],
      ["k", t([2, 3], 10)],
      ["b", t([4], 20)],
      ["bad", t([3, 2], 30)],
    ]);
    const get = { get: (n: string) => parts.get(n)! };
    const placed = new HeapTensors(rt);
    const w = await placed.stack(
      "fc.weight",
      ["q", "k"].map((name) => ({ name, shape: [2, 3] })),
      get,
    );
    expect(w.shape).toEqual([4, 3]);
    expect(Array.from(rt.heap.f32(w.ptr, 12))).toEqual([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]);
    const b = await placed.place("b", get);
    const used = rt.heap.used();
    const lin = loadModule(placed, (s) => new Linear(s.pp("fc"), 3, 4, { bias: false }), {
      runtime: rt,
      strict: false,
    });
    expect(lin.weight.ptr).toBe(w.ptr);
    expect(rt.heap.used()).toBe(used);
    // a placed tensor of the wrong shape is reported as any other
    const e = errOf(() =>
      loadModule(placed, (s) => new Linear(s.pp("fc"), 4, 3, { bias: false }), { runtime: rt, strict: false }),
    );
    expect(e.names).toEqual(["fc.weight"]);
    expect(e.message).toMatch(/"fc\.weight" has shape \[4, 3\], the config needs \[3, 4\]/);
    expect(b.shape).toEqual([4]);
    const e2 = await asyncErrOf(
      placed.stack(
        "x",
        ["q", "bad"].map((name) => ({ name, shape: [2, 3] })),
        get,
      ),
    );
    expect(e2.names).toEqual(["bad"]);
    expect(e2.message).toMatch(/cannot place "x": "bad" has shape \[3, 2\], the config needs \[2, 3\]/);
  });
});
