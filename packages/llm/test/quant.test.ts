/**
 * `dtype: "q8" | "q4"`: weights quantized on load to ggml's Q8_0 / Q4_0 blocks, every projection
 * and the LM head computed on the packed blocks, for GPT-2 and Llama, tied and untied heads.
 * - q8 prefill (GEMM rows ≥ 5: dequantize-and-pack) gives the bits of the f32 engine run on the
 *   checkpoint quantized and dequantized with ggml's formulas (the same GEMM on the same values).
 * - Decode, and q4 prefill (integer dot products on x quantized per block, as ggml computes a
 *   Q4_0 matmul), stay within the activation-rounding error of that model: decode measured ≤
 *   0.022 of the largest |logit| on these seeds (bound 0.06), q4 prefill over every position ≤
 *   0.08 (bound 0.15); q4 prefill's logits are those of decoding the prompt token by token.
 * - Against the f32 logits, the weight rounding itself: these tiny random models (weights of std
 *   0.2–0.5, far rougher than trained ones) measured ≤ 0.10 (q8) and ≤ 0.90 (q4) of the largest
 *   |logit|; bounds 0.25 and 2 catch a broken kernel (a wrong block or scale gives O(10)), not
 *   accuracy. The accuracy of real-sized models is measured in the README (bench/quant-accuracy.mjs).
 * - GGUF files: Q8_0 / Q4_0 matrices are copied as stored (never read through the dequantizing
 *   `get`), repacked and computed packed, with the logits of the file loaded with dtype "f32"
 *   (Q8_0 prefill bit for bit, the rest within the activation rounding).
 * - Typed errors: a bad dtype, an input width that is not a multiple of 32, training.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  dequantize,
  GgmlType,
  InputError,
  init,
  type QuantType,
  quantizeBlocks,
  ShapeError,
  Tensor,
  tensorSource,
  writeSafetensors,
} from "@wasmformer/core";
import { gpt2ToGguf, llamaToGguf } from "@wasmformer/test-utils/gguf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { GgufWeights, loadGgufModel } from "../src/gguf-model.js";
import { type CausalLM, GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

beforeAll(async () => {
  await init({ backend: "auto", threads: 1 });
});

/** W's values after ggml quantization and dequantization along `in` (Linear [out, in], or Conv1D [in, out]). */
function roundTrip(t: Tensor, type: QuantType, conv: boolean): Tensor {
  const [a, b] = t.shape;
  const [out, inF] = conv ? [b, a] : [a, b];
  const src = t.data as Float32Array;
  const rows = new Float32Array(out * inF);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inF; i++) rows[o * inF + i] = conv ? src[i * out + o] : src[o * inF + i];
  const d = dequantize(type === GgmlType.Q8_0 ? "Q8_0" : "Q4_0", quantizeBlocks(type, rows), rows.length);
  const back = new Float32Array(d.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) back[conv ? i * out + o : o * inF + i] = d[o * inF + i];
  return new Tensor(back, t.shape.slice(), "f32");
}

interface Case {
  name: string;
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
  /** the quantized matrices and whether each is a Conv1D [in, out] */
  quantized: (n: string) => { conv: boolean } | undefined;
  load: (config: Record<string, unknown>, t: Map<string, Tensor>, dtype?: "q8" | "q4") => Promise<CausalLM>;
}

const gpt2 = (untied: boolean): Case => {
  const tiny = makeTiny({
    V: 70,
    E: 64,
    H: 4,
    inner: 160,
    L: 2,
    P: 40,
    seed: 7,
    lmHead: untied ? "untied" : undefined,
  });
  return {
    name: `GPT-2 ${untied ? "untied" : "tied"}`,
    ...tiny,
    quantized: (n) =>
      /(c_attn|c_proj|c_fc)\.weight$/.test(n)
        ? { conv: true }
        : /(wte|lm_head)\.weight$/.test(n)
          ? { conv: false }
          : undefined,
    load: (config, t, dtype) => GPT2LMHeadModel.fromWeights(config, tensorSource(t), { dtype, maxBatch: 2 }),
  };
};

const llama = (tied: boolean): Case => {
  const tiny = makeTinyLlama({ V: 70, D: 64, H: 4, KV: 2, I: 96, L: 2, P: 40, seed: 9, tied });
  return {
    name: `Llama ${tied ? "tied" : "untied"}`,
    ...tiny,
    quantized: (n) => (/(_proj|embed_tokens|lm_head)\.weight$/.test(n) ? { conv: false } : undefined),
    load: (config, t, dtype) => LlamaForCausalLM.fromWeights(config, tensorSource(t), { dtype, maxBatch: 2 }),
  };
};

const CASES = [gpt2(false), gpt2(true), llama(true), llama(false)];
const PROMPT = [[3, 14, 15, 9, 26, 5, 35, 8, 61]];

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe.each(CASES)("$name", (c) => {
  for (const dtype of ["q8", "q4"] as const) {
    const type = dtype === "q8" ? GgmlType.Q8_0 : GgmlType.Q4_0;
    const how = dtype === "q8" ? "bit for bit" : "close (x quantized per block)";
    it(`${dtype}: prefill = the f32 engine on the ggml-dequantized checkpoint, ${how}; decode close`, async () => {
      const deq = new Map<string, Tensor>();
      for (const [n, t] of c.tensors) {
        const q = c.quantized(n);
        deq.set(n, q ? roundTrip(t, type, q.conv) : t);
      }
      const mq = await c.load(c.config, c.tensors, dtype);
      const md = await c.load(c.config, deq);
      const mf = await c.load(c.config, c.tensors);
      expect(mq.dtype).toBe(dtype);
      expect(mf.dtype).toBe("f32");
      const lq = mq.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
      const ld = md.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
      const lf = mf.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
      const scale = maxAbs(lf);
      if (dtype === "q8")
        expect(Array.from(new Uint32Array(lq.buffer))).toEqual(Array.from(new Uint32Array(ld.buffer)));
      else {
        // every position's logits: measured ≤ 0.08 of the largest |logit| on these seeds
        expect(maxDiff(lq, ld) / scale, "q4 prefill vs dequantized f32").toBeLessThan(0.15);
        // the same integer products row by row: prefill logits = those of decoding the prompt
        // token by token, up to the f32 order of attention and norms
        const ms = await c.load(c.config, c.tensors, dtype);
        const V = lq.length / PROMPT[0].length;
        for (let t = 0; t < PROMPT[0].length; t++) {
          const tok = PROMPT[0][t];
          const lt = (t === 0 ? ms.prefill([[tok]]) : ms.decode([tok])).logits!.data as Float32Array;
          expect(maxDiff(lt, lq.subarray(t * V, (t + 1) * V)) / scale, `q4 decode step ${t} vs prefill`).toBeLessThan(
            1e-4,
          );
        }
        ms.dispose();
      }
      expect(maxDiff(lq, lf) / scale, "prefill vs f32").toBeLessThan(dtype === "q8" ? 0.25 : 2);
      // decode: one row at a time through gemvQ (x quantized per block)
      for (const id of [4, 44, 17]) {
        const dq = mq.decode([id]).logits!.data as Float32Array;
        const dd = md.decode([id]).logits!.data as Float32Array;
        const df = mf.decode([id]).logits!.data as Float32Array;
        expect(maxDiff(dq, dd) / scale, "decode vs dequantized f32").toBeLessThan(0.06);
        expect(maxDiff(dq, df) / scale, "decode vs f32").toBeLessThan(dtype === "q8" ? 0.25 : 2);
      }
      for (const m of [mq, md, mf]) m.dispose();
    });
  }
});

describe("fromPretrained: matrices quantized while the file streams (F32, F16, BF16 files)", () => {
  const root = mkdtempSync(join(tmpdir(), "wf-quant-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  it("the same bits as quantizing each whole tensor (fromWeights), GPT-2 (Conv1D) and Llama", async () => {
    for (const c of [gpt2(true), llama(false)]) {
      for (const floatDtype of ["F32", "F16", "BF16"] as const) {
        const dir = join(root, `${c.name}-${floatDtype}`.replace(/\W+/g, "-"));
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "config.json"), JSON.stringify(c.config));
        writeFileSync(join(dir, "model.safetensors"), writeSafetensors(c.tensors, undefined, { floatDtype }));
        // the in-memory source holds the values the file stores (rounded to F16/BF16)
        const file = await (await import("@wasmformer/core")).openSafetensors(join(dir, "model.safetensors"));
        const stored = new Map<string, Tensor>();
        for (const n of file.names()) stored.set(n, await file.get(n));
        await file.close();
        for (const dtype of ["q8", "q4"] as const) {
          // one row (Linear) or band of 32 input rows (Conv1D) per read: every chunk offset is used
          const a = await AutoModelForCausalLM.fromPretrained(dir, {
            dtype,
            tokenizer: false,
            maxBatch: 2,
            quantChunk: 1,
          });
          const b = await c.load(c.config, stored, dtype);
          const la = a.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
          const lb = b.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
          expect(Array.from(new Uint32Array(la.buffer)), `${c.name} ${floatDtype} ${dtype}`).toEqual(
            Array.from(new Uint32Array(lb.buffer)),
          );
          a.dispose();
          b.dispose();
        }
      }
    }
  });
});

describe("GGUF files: Q8_0 / Q4_0 matrices used as stored", () => {
  const MATRIX = /(_proj|c_attn|c_proj|c_fc|embed_tokens|wte|lm_head)\.weight$/;
  for (const type of ["Q8_0", "Q4_0"] as const) {
    const how = type === "Q8_0" ? "bit for bit" : "close (x quantized per block)";
    it(`${type}: no dequantize/requantize; prefill = the file loaded as f32, ${how}; decode close`, async () => {
      const l = makeTinyLlama({ V: 70, D: 64, H: 4, KV: 2, I: 96, L: 2, P: 40, seed: 11 });
      const g = makeTiny({ V: 70, E: 64, H: 4, inner: 160, L: 2, P: 40, seed: 12 });
      for (const bytes of [llamaToGguf(l.config, l.tensors, { type }), gpt2ToGguf(g.config, g.tensors, { type })]) {
        const spy = vi.spyOn(GgufWeights.prototype, "get");
        const mq = await loadGgufModel(bytes);
        const read = spy.mock.calls.map((c) => c[0]);
        spy.mockRestore();
        expect(read.length).toBeGreaterThan(0); // norms, biases, positions
        expect(read.filter((n) => MATRIX.test(n))).toEqual([]);
        expect(mq.dtype).toBe(type === "Q8_0" ? "q8" : "q4");
        const mf = await loadGgufModel(bytes, { dtype: "f32" });
        expect(mf.dtype).toBe("f32");
        const lq = mq.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
        const lf = mf.prefill(PROMPT, { logits: "all" }).logits!.data as Float32Array;
        if (type === "Q8_0")
          expect(Array.from(new Uint32Array(lq.buffer))).toEqual(Array.from(new Uint32Array(lf.buffer)));
        else expect(maxDiff(lq, lf) / maxAbs(lf)).toBeLessThan(0.06);
        const dq = mq.decode([4]).logits!.data as Float32Array;
        const df = mf.decode([4]).logits!.data as Float32Array;
        expect(maxDiff(dq, df) / maxAbs(lf)).toBeLessThan(0.06);
        mq.dispose();
        mf.dispose();
      }
    });
  }
});

describe("dtype errors", () => {
  it("a bad dtype is an InputError naming the option", async () => {
    const c = gpt2(false);
    await expect(c.load(c.config, c.tensors, "q3" as "q4")).rejects.toThrow(InputError);
    await expect(c.load(c.config, c.tensors, "q3" as "q4")).rejects.toThrow(/dtype must be "f32", "q8" or "q4"/);
  });

  it("an input width that is not a multiple of 32 is a ShapeError naming the tensor", async () => {
    const tiny = makeTiny({ E: 64, H: 4, inner: 100 });
    const p = GPT2LMHeadModel.fromWeights(tiny.config, tensorSource(tiny.tensors), { dtype: "q8" });
    await expect(p).rejects.toThrow(ShapeError);
    await expect(GPT2LMHeadModel.fromWeights(tiny.config, tensorSource(tiny.tensors), { dtype: "q8" })).rejects.toThrow(
      /"transformer\.h\.0\.mlp\.c_proj\.weight" has 100 input features, not a multiple of 32/,
    );
  });

  it("training a quantized model is an InputError", async () => {
    const c = llama(true);
    const m = await c.load(c.config, c.tensors, "q4");
    expect(() => m.train()).toThrow(InputError);
    expect(() => m.train()).toThrow(/training needs f32 weights/);
    m.dispose();
  });
});
