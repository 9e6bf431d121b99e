/**
 * GPT2LMHeadModel on tiny random checkpoints, against the plain f64 reference of tiny-gpt2.ts,
 * on the reference backend and on the wasm backend.
 */
import { ConfigError, createRuntime, InputError, init, type Runtime, WeightsError } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { excess, makeTiny, refForward, refGreedy, source, type TinySpec } from "./tiny-gpt2.js";

const backends = ["ref", "wasm"] as const;

for (const backend of backends) {
  describe(`GPT2LMHeadModel (${backend})`, () => {
    let rt: () => Runtime;
    beforeAll(async () => {
      await init({ backend: backend === "ref" ? "ref" : "auto" });
      rt = () => createRuntime();
      if (backend === "wasm") expect(createRuntime().backend).not.toBe("ref");
    });
    const load = (spec: TinySpec = {}, opts: { maxBatch?: number; prefillChunk?: number } = {}) => {
      const tiny = makeTiny(spec);
      return GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { ...opts, runtime: rt() }).then(
        (model) => ({ tiny, model }),
      );
    };

    const variants: [string, TinySpec][] = [
      ["HF names", {}],
      ["original GPT-2 names + legacy attn.bias/masked_bias", { prefix: false, legacy: true, seed: 2 }],
      ["stored lm_head copy (tied)", { lmHead: "tied-copy", seed: 3 }],
      ["n_embd 96: Conv1D weights span two column blocks", { E: 96, H: 4, seed: 14 }],
      ["vocab 1700: three LM-head blocks, the last one partial (tied)", { V: 1700, seed: 12 }],
      ["vocab 1700 with an untied lm_head", { V: 1700, lmHead: "untied", seed: 13 }],
      [
        "untied lm_head, n_inner 24, relu, odd sizes",
        { lmHead: "untied", inner: 24, activation: "relu", E: 12, H: 3, V: 37, seed: 4 },
      ],
    ];
    for (const [what, spec] of variants) {
      test(`prefill logits = f64 reference: ${what}`, async () => {
        const { tiny, model } = await load(spec);
        const prompt = [3, 17, 0, 25, 8, 8, 31, 1, 12, ...(spec.V === 1700 ? [1699, 768, 767, 1536] : [])];
        const logits = model.forward([prompt]);
        const ref = refForward(tiny, prompt).logits;
        const V = tiny.config.vocab_size as number;
        expect(logits.shape).toEqual([1, prompt.length, V]);
        const flat = Float64Array.from(ref.flatMap((r) => [...r]));
        expect(excess(logits.data, flat)).toBeLessThan(1);
        if (spec.legacy) expect(model.unusedWeights).toContain("h.0.attn.bias");
        if (spec.lmHead === "tied-copy") expect(model.unusedWeights).toContain("lm_head.weight");
      });
    }

    test("every weight layout computes the same logits", async () => {
      const tiny = makeTiny({ E: 40, H: 5, inner: 100, seed: 15 });
      const prompt = [1, 5, 9, 13, 17, 21];
      const ref = Float64Array.from(refForward(tiny, prompt).logits.flatMap((r) => [...r]));
      for (const layout of [
        { colBlock: 0, headBlock: 768 },
        { colBlock: 7, headBlock: 6 },
        { colBlock: 64, headBlock: 40 },
        { colBlock: 256, headBlock: 1 },
        { layout: "packed" as const },
        {},
      ]) {
        const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), {
          runtime: rt(),
          ...layout,
        });
        expect(excess(m.forward([prompt]).data, ref), JSON.stringify(layout)).toBeLessThan(1);
        const r = await m.generateAll(prompt, { maxNewTokens: 4, stopIds: [] });
        expect(r.ids[0]).toEqual(refGreedy(tiny, prompt, 4).ids);
      }
    });

    test("chunked prefill (chunk 3) and extend() give the same logits", async () => {
      const { tiny, model } = await load({ seed: 5 }, { prefillChunk: 3 });
      const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
      const ref = Float64Array.from(refForward(tiny, prompt).logits.flatMap((r) => [...r]));
      expect(excess(model.forward([prompt]).data, ref)).toBeLessThan(1);
      // the same sequence fed as prefill(4) + extend(5) + decode + decode
      const V = 40;
      const parts: Float32Array[] = [model.prefill([prompt.slice(0, 4)], { logits: "all" }).logits!.data];
      parts.push(model.extend([prompt.slice(4, 9)], { logits: "all" }).logits!.data);
      parts.push(model.decode([prompt[9]]).logits!.data, model.decode([prompt[10]]).logits!.data);
      const all = new Float32Array(prompt.length * V);
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      expect(excess(all, ref)).toBeLessThan(1);
      expect(model.cacheLength).toBe(prompt.length);
    });

    test("cached greedy decode = uncached f64 greedy", async () => {
      const { tiny, model } = await load({ seed: 6, P: 40 });
      const prompt = [5, 9, 2, 33];
      const want = refGreedy(tiny, prompt, 20);
      expect(want.margin).toBeGreaterThan(1e-3); // no near-ties: f32 must reproduce the ids
      const r = await model.generateAll(prompt, { maxNewTokens: 20, stopIds: [] });
      expect(r.ids[0]).toEqual(want.ids);
      expect(r.finishReasons).toEqual(["length"]);
    });

    test("batch of 2 equal-length prompts = each prompt alone", async () => {
      const { tiny, model } = await load({ seed: 7 }, { maxBatch: 3 });
      const prompts = [
        [1, 2, 3, 4, 5],
        [30, 20, 10, 0, 39],
      ];
      const logits = model.forward(prompts);
      const V = 40;
      prompts.forEach((p, b) => {
        const ref = Float64Array.from(refForward(tiny, p).logits.flatMap((r) => [...r]));
        expect(excess(logits.data.subarray(b * 5 * V, (b + 1) * 5 * V), ref)).toBeLessThan(1);
      });
      const r = await model.generateAll(prompts, { maxNewTokens: 8, stopIds: [] });
      prompts.forEach((p, b) => {
        const g = refGreedy(tiny, p, 8);
        expect(g.margin).toBeGreaterThan(1e-3);
        expect(r.ids[b]).toEqual(g.ids);
      });
    });

    test("left-padded prompts with an attention mask = unpadded runs", async () => {
      const { tiny, model } = await load({ seed: 8 }, { maxBatch: 3 });
      const prompts = [[7, 8, 9, 10, 11, 12], [4], [20, 21, 22]];
      // explicit padding + mask: logits at the real positions equal the unpadded logits
      const T = 6;
      const V = 40;
      const padded = prompts.map((p) => [...new Array(T - p.length).fill(0), ...p]);
      const mask = prompts.map((p) => [...new Array(T - p.length).fill(0), ...new Array(p.length).fill(1)]);
      const logits = model.prefill(padded, { attentionMask: mask, logits: "all" }).logits!;
      expect(model.padding).toEqual([0, 5, 3]);
      prompts.forEach((p, b) => {
        const ref = Float64Array.from(refForward(tiny, p).logits.flatMap((r) => [...r]));
        const off = (b * T + (T - p.length)) * V;
        expect(excess(logits.data.subarray(off, off + p.length * V), ref)).toBeLessThan(1);
      });
      // generation pads automatically; ids and logprobs equal the single-prompt runs
      const batched = await model.generateAll(prompts, { maxNewTokens: 7, stopIds: [], logprobs: true });
      for (let b = 0; b < prompts.length; b++) {
        const alone = await model.generateAll(prompts[b], { maxNewTokens: 7, stopIds: [], logprobs: true });
        expect(batched.ids[b]).toEqual(alone.ids[0]);
        expect(refGreedy(tiny, prompts[b], 7).ids).toEqual(alone.ids[0]);
        expect(excess(batched.logprobs![b], alone.logprobs![0])).toBeLessThan(1);
      }
    });

    test("the heap is planned once: prefill, decode and generation never grow it", async () => {
      const { model } = await load({ seed: 16 }, { maxBatch: 2, prefillChunk: 4 });
      const used = model.runtime.heap.used();
      expect(model.heapBytes).toBe(used);
      model.forward([Array.from({ length: 20 }, (_, i) => i)]);
      model.prefill(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        { outputAttentions: true, logits: "all" },
      );
      model.decode([7, 8]);
      await model.generateAll([[1], [2, 3, 4]], { maxNewTokens: 10, temperature: 1, topK: 5, topP: 0.9, seed: 1 });
      expect(model.runtime.heap.used()).toBe(used);
    });

    test("n_positions overflow is an InputError", async () => {
      const { model } = await load({ P: 16 });
      const prompt = Array.from({ length: 10 }, (_, i) => i);
      await expect(model.generateAll(prompt, { maxNewTokens: 7 })).rejects.toThrow(InputError);
      await expect(model.generateAll(prompt, { maxNewTokens: 7 })).rejects.toThrow(/exceeds n_positions 16/);
      await expect(model.generateAll(prompt, { maxNewTokens: 6, stopIds: [] })).resolves.toBeTruthy();
      expect(() => model.prefill([Array.from({ length: 17 }, () => 1)])).toThrow(/exceeds n_positions 16/);
      model.prefill([Array.from({ length: 16 }, () => 1)]);
      expect(() => model.decode([1])).toThrow(/beyond n_positions 16/);
    });

    test("bad ids, shapes and options are typed errors naming the fault", async () => {
      const { model } = await load();
      expect(() => model.prefill([[1, 2, 40]])).toThrow(/token id 40 at input_ids\[0, 2\]/);
      expect(() => model.prefill([[1, -1]])).toThrow(InputError);
      expect(() =>
        model.prefill([
          [1, 2],
          [3, 4],
        ]),
      ).toThrow(/maxBatch 1/);
      expect(() => model.decode([1])).toThrow(/before prefill/);
      model.prefill([[1, 2]]);
      expect(() => model.decode([1, 2])).toThrow(/2 token ids for a batch of 1/);
      expect(() => model.decode([99])).toThrow(/token id 99 at input_ids\[0, 2\]/);
      await expect(model.generateAll([1], { topP: 0 })).rejects.toThrow(/topP/);
      await expect(model.generateAll([1], { temperature: -1 })).rejects.toThrow(/temperature/);
      await expect(model.generateAll("text")).rejects.toThrow(/needs a tokenizer/);
    });

    test("weights and config errors", async () => {
      const tiny = makeTiny();
      const t = tiny.tensors;
      const bad = new Map(t);
      bad.set("transformer.h.1.mlp.c_fc.weight", t.get("transformer.h.1.mlp.c_proj.weight")!);
      await expect(GPT2LMHeadModel.fromWeights(tiny.config, source(bad), { runtime: rt() })).rejects.toThrow(
        /"transformer\.h\.1\.mlp\.c_fc\.weight" has shape \[64, 16\], expected \[16, 64\]/,
      );
      const missing = new Map(t);
      missing.delete("transformer.ln_f.bias");
      await expect(GPT2LMHeadModel.fromWeights(tiny.config, source(missing), { runtime: rt() })).rejects.toThrow(
        WeightsError,
      );
      await expect(
        GPT2LMHeadModel.fromWeights({ ...tiny.config, tie_word_embeddings: false }, source(t), { runtime: rt() }),
      ).rejects.toThrow(/lm_head\.weight/);
      await expect(GPT2LMHeadModel.fromWeights({ ...tiny.config, n_head: 5 }, source(t))).rejects.toThrow(ConfigError);
      await expect(GPT2LMHeadModel.fromWeights({ ...tiny.config, n_embd: "16" }, source(t))).rejects.toThrow(/n_embd/);
      await expect(
        GPT2LMHeadModel.fromWeights({ ...tiny.config, activation_function: "mish" }, source(t)),
      ).rejects.toThrow(/activation_function/);
    });

    test("attention weights on request: causal rows summing to 1, equal to the reference", async () => {
      const { tiny, model } = await load({ seed: 9 });
      const prompt = [3, 1, 4, 1, 5];
      const out = model.prefill([prompt], { outputAttentions: true, logits: "none" });
      const ref = refForward(tiny, prompt).probs;
      expect(out.attentions).toHaveLength(2);
      for (let l = 0; l < 2; l++) {
        const a = out.attentions![l];
        expect(a.shape).toEqual([1, 4, 5, 5]);
        expect(excess(a.data, ref[l].flat(2))).toBeLessThan(1);
      }
      const step = model.decode([9], { outputAttentions: true });
      expect(step.attentions![0].shape).toEqual([1, 4, 1, 6]);
      const row = step.attentions![1].data.subarray(0, 6);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    });
  });
}
