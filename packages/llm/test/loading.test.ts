/**
 * Loading GPT-2 checkpoints that do not fit their config: strict by default (unused tensors are a
 * `WeightsError`), configs asking for more layers than the file holds or for sizes it does not
 * have fail before any heap is reserved, and loading can be aborted.
 */
import { AbortError, createRuntime, init, type Tensor, WeightsError } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { GPT2LMHeadModel, type WeightSource } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny, source } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

beforeAll(async () => {
  await init({ backend: "ref" });
});

/** A source without `info()` (allowed by the API): shapes are known only by reading a tensor. */
function noInfo(m: Map<string, Tensor>, log: string[] = []): WeightSource {
  return {
    names: () => [...m.keys()],
    has: (n) => m.has(n),
    get: (n) => {
      log.push(n);
      return m.get(n)!;
    },
  };
}

async function errOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("GPT-2 strict loading", () => {
  test("a config with fewer layers than its checkpoint is a WeightsError naming the unused tensors", async () => {
    const tiny = makeTiny({ L: 2 });
    const config = { ...tiny.config, n_layer: 1 };
    const e = await errOf(GPT2LMHeadModel.fromWeights(config, source(tiny.tensors)));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toMatch(/unexpected tensors "transformer\.h\.1\.ln_1\.weight".* and 7 more/);
    expect(e.message).toContain("strict: false");
    expect((e as WeightsError).names).toHaveLength(12);
    expect((e as WeightsError).names).toContain("transformer.h.1.mlp.c_proj.bias");
    // any other stray tensor too
    const extra = new Map(makeTiny().tensors).set(
      "transformer.h.0.attn.foo",
      makeTiny().tensors.get("transformer.ln_f.bias")!,
    );
    const e2 = await errOf(GPT2LMHeadModel.fromWeights(makeTiny().config, source(extra)));
    expect((e2 as WeightsError).names).toEqual(["transformer.h.0.attn.foo"]);
  });

  test("strict: false loads it anyway and lists the unused tensors", async () => {
    const tiny = makeTiny({ L: 2 });
    const m = await GPT2LMHeadModel.fromWeights({ ...tiny.config, n_layer: 1 }, source(tiny.tensors), {
      strict: false,
    });
    expect(m.config.n_layer).toBe(1);
    expect(m.unusedWeights).toHaveLength(12);
    expect(m.forward([[1, 2]]).shape).toEqual([1, 2, 40]);
  });

  test("what FORMAT.md §6.12 says to ignore stays accepted: legacy attn buffers, a stored tied lm_head", async () => {
    for (const prefix of [false, true]) {
      const tiny = makeTiny({ L: 2, prefix, legacy: true, lmHead: "tied-copy" });
      const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
      const p = prefix ? "transformer." : "";
      expect(m.unusedWeights.sort()).toEqual(
        [
          `${p}h.0.attn.bias`,
          `${p}h.0.attn.masked_bias`,
          `${p}h.1.attn.bias`,
          `${p}h.1.attn.masked_bias`,
          "lm_head.weight",
        ].sort(),
      );
    }
  });
});

describe("configs that ask for the impossible fail fast", () => {
  test("n_layer 1e7 (or 1e6): a WeightsError in milliseconds, not a heap out-of-memory", async () => {
    const tiny = makeTiny({ L: 2 });
    for (const n_layer of [1e7, 1e6, 3]) {
      const t0 = performance.now();
      const e = await errOf(GPT2LMHeadModel.fromWeights({ ...tiny.config, n_layer }, source(tiny.tensors)));
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(e).toBeInstanceOf(WeightsError);
      expect(e.message).toContain(`n_layer ${n_layer}`);
      expect(e.message).toContain('the checkpoint holds 2 ("transformer.h.0.*" … "transformer.h.1.*")');
      expect((e as WeightsError).names).toEqual(["transformer.h.2.ln_1.weight"]);
    }
  });

  test("a source without info() and vocab_size 8e6: the shape check fails before any heap is reserved", async () => {
    const tiny = makeTiny({ L: 2 });
    const rt = createRuntime();
    const before = rt.heap.buffer().byteLength;
    const t0 = performance.now();
    const e = await errOf(
      GPT2LMHeadModel.fromWeights({ ...tiny.config, vocab_size: 8e6 }, noInfo(tiny.tensors), { runtime: rt }),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('"transformer.wte.weight" has shape [40, 16], expected [8000000, 16]');
    expect(rt.heap.used()).toBe(0);
    expect(rt.heap.buffer().byteLength).toBe(before);
  });

  test("a source without info() still loads (each tensor is read for its shape, then copied)", async () => {
    const tiny = makeTiny({ L: 2 });
    const log: string[] = [];
    const a = await GPT2LMHeadModel.fromWeights(tiny.config, noInfo(tiny.tensors, log));
    const b = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
    expect(log.length).toBe(2 * tiny.tensors.size);
    expect(a.forward([[3, 1, 4]]).data).toEqual(b.forward([[3, 1, 4]]).data);
  });
});

describe("aborting a load", () => {
  test("an aborted signal stops before the next tensor is read, with an AbortError", async () => {
    const tiny = makeTiny({ L: 4 });
    const ac = new AbortController();
    const read: string[] = [];
    const slow: WeightSource = {
      names: () => [...tiny.tensors.keys()],
      has: (n) => tiny.tensors.has(n),
      info: (n) => ({ shape: tiny.tensors.get(n)!.shape }),
      get: async (n) => {
        read.push(n);
        if (read.length === 3) ac.abort();
        await new Promise((r) => setTimeout(r, 1));
        return tiny.tensors.get(n)!;
      },
    };
    const e = await errOf(GPT2LMHeadModel.fromWeights(tiny.config, slow, { signal: ac.signal }));
    expect(e).toBeInstanceOf(AbortError);
    expect(read).toHaveLength(3);
    // the runtime the aborted load made (its heap planned in full) is given back at once: the next
    // createRuntime() reuses it
    const big = makeTiny({ V: 2000, E: 64, L: 1 });
    const ac2 = new AbortController();
    const e2 = await errOf(
      GPT2LMHeadModel.fromWeights(
        big.config,
        {
          ...source(big.tensors),
          get: (n) => {
            ac2.abort();
            return big.tensors.get(n)!;
          },
        },
        { signal: ac2.signal },
      ),
    );
    expect(e2).toBeInstanceOf(AbortError);
    expect(createRuntime().heap.buffer().byteLength).toBeGreaterThan(2000 * 64 * 4);
    const pre = new AbortController();
    pre.abort();
    expect(await errOf(GPT2LMHeadModel.fromWeights(tiny.config, slow, { signal: pre.signal }))).toBeInstanceOf(
      AbortError,
    );
  });
});

describe("Llama loading (the same engine)", () => {
  test("num_hidden_layers 1e7 fails at once; fewer layers than the file is a WeightsError; strict: false loads", async () => {
    const tiny = makeTinyLlama({ L: 2, legacy: true });
    const t0 = performance.now();
    const e = await errOf(
      LlamaForCausalLM.fromWeights({ ...tiny.config, num_hidden_layers: 1e7 }, source(tiny.tensors)),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e).toBeInstanceOf(WeightsError);
    expect((e as WeightsError).names).toEqual(["model.layers.2.input_layernorm.weight"]);
    const fewer = { ...tiny.config, num_hidden_layers: 1 };
    const e2 = await errOf(LlamaForCausalLM.fromWeights(fewer, source(tiny.tensors)));
    expect(e2).toBeInstanceOf(WeightsError);
    // the layer's weights are named; its legacy inv_freq buffer (FORMAT.md §6.15) is not
    expect((e2 as WeightsError).names.every((n) => n.startsWith("model.layers.1.") && !n.endsWith("inv_freq"))).toBe(
      true,
    );
    const m = await LlamaForCausalLM.fromWeights(fewer, source(tiny.tensors), { strict: false });
    expect(m.config.num_hidden_layers).toBe(1);
    // the full config loads in strict mode with the inv_freq buffers
    await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors));
  });
});
