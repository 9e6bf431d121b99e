/**
 * LlamaForCausalLM on tiny random checkpoints against the plain f64 reference of tiny-llama.ts, on
 * the reference backend and on wasm: GQA/MQA, head_dim ≠ hidden/heads, biases, tied and untied
 * heads, rope scaling variants, the KV cache, batches with left padding, inputs_embeds, generation.
 */
import {
  AbortError,
  ConfigError,
  createRuntime,
  DisposedError,
  InputError,
  init,
  type Runtime,
  WeightsError,
} from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { parseLlamaConfig } from "../src/llama.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { ropeInvFreq } from "../src/rope.js";
import { excess, makeTiny, source } from "./tiny-gpt2.js";
import { type LlamaSpec, makeTinyLlama, refInvFreq, refLlama, refLlamaGreedy } from "./tiny-llama.js";

const flat = (rows: Float64Array[]) => Float64Array.from(rows.flatMap((r) => [...r]));

for (const backend of ["ref", "wasm"] as const) {
  describe(`LlamaForCausalLM (${backend})`, () => {
    let rt: () => Runtime;
    beforeAll(async () => {
      await init({ backend: backend === "ref" ? "ref" : "auto" });
      rt = () => createRuntime();
      if (backend === "wasm") expect(createRuntime().backend).not.toBe("ref");
    });
    const load = (spec: LlamaSpec = {}, opts: { maxBatch?: number; prefillChunk?: number } = {}) => {
      const tiny = makeTinyLlama(spec);
      return LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), { ...opts, runtime: rt() }).then(
        (model) => ({ tiny, model }),
      );
    };

    const variants: [string, LlamaSpec][] = [
      ["GQA: 4 query heads share 2 key/value heads", {}],
      ["MQA: 6 query heads, 1 key/value head", { D: 24, H: 6, KV: 1, seed: 2 }],
      ["MHA (KV = H), tied embeddings", { H: 3, KV: 3, tied: true, seed: 3 }],
      ["head_dim 6 ≠ hidden/heads (20/4), d/2 odd", { D: 20, H: 4, KV: 2, headDim: 6, seed: 4 }],
      ["head_dim 10, 3 query heads, MQA, odd intermediate", { D: 16, H: 3, KV: 1, headDim: 10, I: 37, seed: 5 }],
      ["attention_bias with an o_proj bias (HF Llama)", { attentionBias: true, oBias: true, seed: 6 }],
      ["Qwen2: q/k/v biases, no o_proj bias, tied", { modelType: "qwen2", attentionBias: true, tied: true, seed: 7 }],
      ["mlp_bias", { mlpBias: true, seed: 8 }],
      ["legacy rotary_emb.inv_freq buffers are ignored", { legacy: true, seed: 9 }],
      ["rope_theta 500000, 3 layers", { theta: 500000, L: 3, seed: 10 }],
      ["rope_scaling linear (factor 4)", { ropeScaling: { type: "linear", factor: 4 }, seed: 11 }],
      [
        "rope_scaling llama3 (all three frequency bands)",
        {
          D: 32,
          H: 4,
          KV: 2,
          theta: 100,
          ropeScaling: {
            rope_type: "llama3",
            factor: 4,
            low_freq_factor: 1,
            high_freq_factor: 4,
            original_max_position_embeddings: 32,
          },
          seed: 12,
        },
      ],
      [
        "rope_scaling dynamic (inside max_position_embeddings)",
        { ropeScaling: { rope_type: "dynamic", factor: 2 }, seed: 13 },
      ],
      ["Mistral with sliding_window null", { modelType: "mistral", extra: { sliding_window: null }, seed: 14 }],
    ];
    for (const [what, spec] of variants) {
      test(`prefill logits = f64 reference: ${what}`, async () => {
        const { tiny, model } = await load(spec);
        const prompt = [3, 17, 0, 25, 8, 8, 31, 1, 12, 44, 5, 49];
        const logits = model.forward([prompt]);
        expect(logits.shape).toEqual([1, prompt.length, tiny.config.vocab_size]);
        expect(excess(logits.data, flat(refLlama(tiny, prompt)))).toBeLessThan(1);
        if (spec.legacy) expect(model.unusedWeights).toContain("model.layers.0.self_attn.rotary_emb.inv_freq");
      });
    }

    test("the llama3 case really exercises the three bands of the formula", () => {
      const [, spec] = variants.find(([w]) => w.startsWith("rope_scaling llama3"))!;
      const c = makeTinyLlama(spec).config;
      const inv = refInvFreq(c);
      const plain = refInvFreq({ ...c, rope_scaling: null });
      expect(inv[0]).toBe(plain[0]); // high frequency: unchanged
      expect(inv[inv.length - 1]).toBeCloseTo(plain[plain.length - 1] / 4, 15); // low: divided by factor
      expect(inv.some((f, j) => f !== plain[j] && Math.abs(f - plain[j] / 4) > 1e-9)).toBe(true); // smoothed band
    });

    test("every weight layout computes the same logits and tokens", async () => {
      const tiny = makeTinyLlama({ D: 40, H: 5, KV: 1, I: 70, seed: 15 });
      const prompt = [1, 5, 9, 13, 17, 21];
      const ref = flat(refLlama(tiny, prompt));
      const want = refLlamaGreedy(tiny, prompt, 4);
      expect(want.margin).toBeGreaterThan(1e-3);
      for (const layout of [{ colBlock: 0 }, { colBlock: 7, headBlock: 6 }, { colBlock: 16, headBlock: 64 }, {}]) {
        const m = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), { runtime: rt(), ...layout });
        expect(excess(m.forward([prompt]).data, ref), JSON.stringify(layout)).toBeLessThan(1);
        expect((await m.generateAll(prompt, { maxNewTokens: 4, stopIds: [] })).ids[0]).toEqual(want.ids);
      }
    });

    test("KV cache: prefill + extend + decode (chunk 3) = one full forward", async () => {
      const { tiny, model } = await load({ seed: 16 }, { prefillChunk: 3 });
      const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
      const full = model.forward([prompt]).data.slice();
      expect(excess(full, flat(refLlama(tiny, prompt)))).toBeLessThan(1);
      const parts = [model.prefill([prompt.slice(0, 4)], { logits: "all" }).logits!.data];
      parts.push(model.extend([prompt.slice(4, 9)], { logits: "all" }).logits!.data);
      parts.push(model.decode([prompt[9]]).logits!.data, model.decode([prompt[10]]).logits!.data);
      const all = new Float32Array(full.length);
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      expect(excess(all, full, 1e-5, 1e-5)).toBeLessThan(1);
      expect(model.cacheLength).toBe(prompt.length);
    });

    test("cached greedy decode = uncached f64 greedy; a prompt of length 1", async () => {
      const { tiny, model } = await load({ seed: 17, P: 40 });
      for (const prompt of [[5, 9, 2, 33], [7]]) {
        const want = refLlamaGreedy(tiny, prompt, 16);
        expect(want.margin).toBeGreaterThan(1e-3);
        const r = await model.generateAll(prompt, { maxNewTokens: 16, stopIds: [] });
        expect(r.ids[0]).toEqual(want.ids);
      }
    });

    test("a batch with left padding = each prompt alone (logits and greedy tokens)", async () => {
      const { tiny, model } = await load({ seed: 18, H: 6, KV: 2, D: 24 }, { maxBatch: 3 });
      const prompts = [[7, 8, 9, 10, 11, 12], [4], [20, 21, 22]];
      const T = 6;
      const V = 50;
      const padded = prompts.map((p) => [...new Array(T - p.length).fill(0), ...p]);
      const mask = prompts.map((p) => [...new Array(T - p.length).fill(0), ...new Array(p.length).fill(1)]);
      const logits = model.prefill(padded, { attentionMask: mask, logits: "all" }).logits!;
      prompts.forEach((p, b) => {
        const off = (b * T + (T - p.length)) * V;
        expect(excess(logits.data.subarray(off, off + p.length * V), flat(refLlama(tiny, p)))).toBeLessThan(1);
      });
      const r = await model.generateAll(prompts, { maxNewTokens: 6, stopIds: [] });
      prompts.forEach((p, b) => {
        const g = refLlamaGreedy(tiny, p, 6);
        expect(g.margin).toBeGreaterThan(1e-3);
        expect(r.ids[b]).toEqual(g.ids);
      });
    });

    test("inputs_embeds: embedTokens + prefillEmbeds = prefill on the ids", async () => {
      const { tiny, model } = await load({ seed: 19, tied: true });
      const prompt = [3, 1, 4, 1, 5, 9];
      const emb = model.embedTokens([prompt]);
      expect(emb.shape).toEqual([1, 6, 24]);
      const a = model.prefillEmbeds(emb, { logits: "all" }).logits!;
      expect(excess(a.data, flat(refLlama(tiny, prompt)))).toBeLessThan(1);
      const want = refLlamaGreedy(tiny, prompt, 5).ids;
      const r = await model.generateAll({ inputsEmbeds: emb }, { maxNewTokens: 5, stopIds: [] });
      expect(r.ids[0]).toEqual(want);
    });

    test("sampling is seeded, streaming yields every token, abort stops with AbortError", async () => {
      const { model } = await load({ seed: 20 });
      const o = { maxNewTokens: 8, temperature: 0.9, topK: 10, topP: 0.9, seed: 5, stopIds: [] };
      const a = await model.generateAll([1, 2, 3], o);
      const b = await model.generateAll([1, 2, 3], o);
      expect(a.ids).toEqual(b.ids);
      const seen: number[] = [];
      for await (const c of model.generate([1, 2, 3], o)) seen.push(c.token);
      expect(seen).toEqual(a.ids[0]);
      const ac = new AbortController();
      const it = model.generate([1, 2, 3], { ...o, signal: ac.signal });
      await it.next();
      ac.abort();
      await expect(it.next()).rejects.toBeInstanceOf(AbortError);
    });

    test("eos_token_id as a list: generation stops at any of its ids", async () => {
      const base = await load({ seed: 21, P: 40 });
      const free = (await base.model.generateAll([4, 5, 6], { maxNewTokens: 12, stopIds: [] })).ids[0];
      const stop = free[3];
      const first = free.indexOf(stop);
      const { model } = await load({ seed: 21, P: 40, eos: [49, stop] });
      expect(model.arch.eosTokenIds).toEqual([49, stop]);
      const r = await model.generateAll([4, 5, 6], { maxNewTokens: 12 });
      expect(r.ids[0]).toEqual(free.slice(0, first + 1));
      expect(r.finishReasons).toEqual(["stop_id"]);
    });

    test("the KV cache is sized by the key/value heads", async () => {
      const gqa = await load({ D: 48, H: 8, KV: 1, seed: 22, P: 64 }, { maxBatch: 2 });
      const mha = await load({ D: 48, H: 8, KV: 8, seed: 22, P: 64 }, { maxBatch: 2 });
      // 2 (k, v) · 2 layers · 2 rows · 64 slots · (8 − 1) heads · 6 floats · 4 bytes fewer
      expect(mha.model.heapBytes - gqa.model.heapBytes).toBeGreaterThanOrEqual(2 * 2 * 2 * 64 * 7 * 6 * 4);
    });

    test("positions beyond max_position_embeddings are an InputError naming it", async () => {
      const { model } = await load({ seed: 23, P: 8 });
      expect(() => model.forward([[1, 2, 3, 4, 5, 6, 7, 8, 9]])).toThrow(/max_position_embeddings 8/);
      expect(() => model.forward([[1, 2, 3, 4, 5, 6, 7, 8, 9]])).toThrow(InputError);
      model.prefill([[1, 2, 3, 4, 5, 6, 7]]);
      model.decode([1]);
      expect(() => model.decode([1])).toThrow(/beyond max_position_embeddings 8/);
      await expect(model.generateAll([1, 2, 3, 4, 5], { maxNewTokens: 4 })).rejects.toThrow(
        /exceeds max_position_embeddings 8/,
      );
    });

    test("AutoModelForCausalLM picks the class by model_type", async () => {
      const g = makeTiny({ seed: 24 });
      for (const t of ["llama", "qwen2", "mistral"]) {
        // Qwen2 always has q/k/v biases
        const l = makeTinyLlama({ seed: 24, modelType: t, attentionBias: t === "qwen2" });
        const m = await AutoModelForCausalLM.fromWeights(l.config, source(l.tensors), { runtime: rt() });
        expect(m).toBeInstanceOf(LlamaForCausalLM);
        expect(m.arch.modelType).toBe(t);
      }
      const gm = await AutoModelForCausalLM.fromWeights(g.config, source(g.tensors), { runtime: rt() });
      expect(gm).toBeInstanceOf(GPT2LMHeadModel);
    });
  });
}

describe("bad Llama configs and weights: typed errors naming the field", () => {
  const base = makeTinyLlama().config;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["unknown model_type", { model_type: "falcon" }, /model_type/],
    [
      "unsupported rope_scaling type",
      { rope_scaling: { rope_type: "yarn", factor: 2 } },
      /rope_scaling\.rope_type.*"yarn"/,
    ],
    ["unsupported rope_scaling (legacy key)", { rope_scaling: { type: "su", factor: 2 } }, /rope_scaling\.type/],
    ["rope_scaling linear without factor", { rope_scaling: { type: "linear" } }, /rope_scaling\.factor/],
    [
      "llama3 without original_max_position_embeddings",
      { rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 } },
      /rope_scaling\.original_max_position_embeddings/,
    ],
    ["rope_scaling not an object", { rope_scaling: "linear" }, /rope_scaling/],
    [
      "KV heads not dividing heads",
      { num_key_value_heads: 3 },
      /num_key_value_heads.*does not divide num_attention_heads/,
    ],
    ["odd head_dim", { head_dim: 5 }, /head_dim/],
    ["hidden_size not divisible without head_dim", { head_dim: null, hidden_size: 25 }, /hidden_size/],
    ["eos_token_id list outside the vocabulary", { eos_token_id: [2, 50] }, /eos_token_id/],
    ["eos_token_id of the wrong type", { eos_token_id: "2" }, /eos_token_id/],
    ["mistral with a binding sliding window", { model_type: "mistral", sliding_window: 16 }, /model_type.*mistral/],
    ["qwen2 with use_sliding_window", { model_type: "qwen2", use_sliding_window: true }, /use_sliding_window/],
    ["unsupported hidden_act", { hidden_act: "swiglu" }, /hidden_act/],
  ];
  for (const [what, patch, re] of cases) {
    test(what, () => {
      const err = (() => {
        try {
          parseLlamaConfig({ ...base, ...patch });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(re);
    });
  }

  test("AutoModelForCausalLM rejects an unknown or missing model_type", async () => {
    await init({ backend: "ref" });
    const t = makeTinyLlama();
    await expect(
      AutoModelForCausalLM.fromWeights({ ...t.config, model_type: "bert" }, source(t.tensors)),
    ).rejects.toThrow(/model_type.*"bert"/);
    const { model_type: _, ...noType } = t.config;
    await expect(AutoModelForCausalLM.fromWeights(noType, source(t.tensors))).rejects.toBeInstanceOf(ConfigError);
  });

  test("untied without lm_head.weight, a missing or misshapen tensor: WeightsError naming it", async () => {
    await init({ backend: "ref" });
    const t = makeTinyLlama();
    const m = new Map(t.tensors);
    m.delete("lm_head.weight");
    await expect(LlamaForCausalLM.fromWeights(t.config, source(m))).rejects.toThrow(/lm_head\.weight/);
    const m2 = new Map(t.tensors);
    m2.delete("model.layers.1.mlp.up_proj.weight");
    await expect(LlamaForCausalLM.fromWeights(t.config, source(m2))).rejects.toThrow(WeightsError);
    const m3 = new Map(t.tensors);
    m3.set("model.layers.0.self_attn.k_proj.weight", t.tensors.get("model.layers.0.self_attn.q_proj.weight")!);
    await expect(LlamaForCausalLM.fromWeights(t.config, source(m3))).rejects.toThrow(
      /model\.layers\.0\.self_attn\.k_proj\.weight.*\[24, 24\].*\[12, 24\]/,
    );
    // attention_bias promises q/k/v biases
    await expect(
      LlamaForCausalLM.fromWeights({ ...t.config, attention_bias: true }, source(t.tensors)),
    ).rejects.toThrow(/q_proj\.bias/);
  });
});

describe("rope frequencies", () => {
  const c = (scaling: Record<string, unknown> | null, extra: Record<string, unknown> = {}) => ({
    ...makeTinyLlama({ headDim: 16, D: 32, ropeScaling: scaling }).config,
    ...extra,
  });
  const params = (cfg: Record<string, unknown>) => {
    const p = parseLlamaConfig(cfg);
    return {
      headDim: p.head_dim,
      theta: p.rope_theta,
      scaling: p.rope_scaling,
      maxPositions: p.max_position_embeddings,
    };
  };
  test("default, linear and llama3 equal HF's formulas", () => {
    for (const sc of [
      null,
      { rope_type: "default" },
      { type: "linear", factor: 2.5 },
      { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 40 },
    ]) {
      const cfg = c(sc, { rope_theta: 1000 });
      const got = ropeInvFreq(params(cfg));
      const want = refInvFreq(cfg);
      expect(excess(got, want, 0, 1e-14)).toBeLessThan(1);
    }
  });
  test("dynamic: the default frequencies up to max_position_embeddings, NTK-scaled beyond", () => {
    const cfg = c({ rope_type: "dynamic", factor: 2 });
    const p = params(cfg);
    expect(Array.from(ropeInvFreq(p))).toEqual(Array.from(ropeInvFreq({ ...p, scaling: null })));
    expect(Array.from(ropeInvFreq(p, 48))).toEqual(Array.from(ropeInvFreq({ ...p, scaling: null })));
    const long = ropeInvFreq(p, 150);
    expect(excess(long, refInvFreq(cfg, 150), 0, 1e-14)).toBeLessThan(1);
    expect(long[3]).toBeLessThan(ropeInvFreq({ ...p, scaling: null })[3]);
  });
});

describe("use after dispose", () => {
  test("the DisposedError names the class that was disposed (Llama, AutoModelForCausalLM, GPT-2)", async () => {
    const l = makeTinyLlama({ seed: 5 });
    const g = makeTiny({ seed: 5 });
    const models: [Promise<{ dispose(): void; forward(ids: number[][]): unknown }>, string][] = [
      [LlamaForCausalLM.fromWeights(l.config, source(l.tensors)), "LlamaForCausalLM"],
      [AutoModelForCausalLM.fromWeights(l.config, source(l.tensors)), "LlamaForCausalLM"],
      [GPT2LMHeadModel.fromWeights(g.config, source(g.tensors)), "GPT2LMHeadModel"],
    ];
    for (const [load, name] of models) {
      const m = await load;
      m.dispose();
      expect(() => m.forward([[1, 2]])).toThrow(DisposedError);
      expect(() => m.forward([[1, 2]])).toThrow(`this ${name} has been disposed`);
    }
  });
});
