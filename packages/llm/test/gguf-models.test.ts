/**
 * Models from GGUF files: our tiny random Llama / Qwen2 / GPT-2 checkpoints written as llama.cpp's
 * converter writes them (test-utils gguf.ts: names, Q/K permutation, transposed Conv1D, metadata,
 * F32 / F16 / Q8_0), loaded back with `loadGgufModel` / `AutoModelForCausalLM.fromPretrained("x.gguf")`:
 * the logits equal the safetensors model's (F32 bit for bit; F16 and Q8_0 equal the safetensors
 * model of the dequantized weights bit for bit, and the f32 model within the quantization error).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  dequantize,
  f16ToF32,
  f32ToF16,
  GgufError,
  InputError,
  init,
  mulberry32,
  openGguf,
  Tensor,
  WasmError,
  WasmformerError,
  WeightsError,
} from "@wasmformer/core";
import {
  ggufParts,
  gpt2ToGguf,
  llamaGguf,
  llamaToGguf,
  quantizeQ8_0,
  type WriteType,
} from "@wasmformer/test-utils/gguf";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { ggufPlan, loadGgufModel, unpermuteRows } from "../src/gguf-model.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny, source, type TinySpec } from "./tiny-gpt2.js";
import { type LlamaSpec, makeTinyLlama } from "./tiny-llama.js";

let root: string;
beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-gguf-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The f32 values a matrix has after storing it as `type` (what a GGUF reader must give back). */
function roundTrip(t: Tensor, type: WriteType): Tensor {
  const x = t.data as Float32Array;
  if (type === "F32" || t.shape.length !== 2) return t;
  const cols = t.shape[1];
  if (type === "F16" || cols % 32 !== 0)
    return new Tensor(
      x.map((v) => f16ToF32(f32ToF16(v))),
      t.shape.slice(),
      "f32",
    );
  return new Tensor(dequantize("Q8_0", quantizeQ8_0(x), x.length), t.shape.slice(), "f32");
}
const roundTripAll = (m: Map<string, Tensor>, type: WriteType) =>
  new Map([...m].map(([k, v]) => [k, roundTrip(v, type)] as const));

const maxAbs = (a: ArrayLike<number>) =>
  Array.prototype.reduce.call(a, (m: number, v) => Math.max(m, Math.abs(v as number)), 0) as number;
/** ‖a − b‖ / ‖b‖ (root mean square). */
const relRms = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]));
  return w;
};

const PROMPT = [3, 9, 4, 17, 5, 11, 2, 8];

describe("Llama family from GGUF", () => {
  const variants: [string, LlamaSpec, "llama" | "qwen2"][] = [
    ["GQA (4 query heads, 2 kv heads), untied output", { D: 64, H: 4, KV: 2, I: 96, V: 70, seed: 41 }, "llama"],
    ["MHA, tied (no output.weight)", { D: 64, H: 4, KV: 4, I: 64, tied: true, seed: 42 }, "llama"],
    [
      "MQA, head_dim 8 ≠ hidden/heads, q/k/v/o biases (permuted too)",
      { D: 32, H: 6, KV: 1, headDim: 8, I: 64, attentionBias: true, oBias: true, seed: 43 },
      "llama",
    ],
    [
      "Qwen2: q/k/v biases, not permuted, tied",
      { D: 64, H: 4, KV: 2, I: 64, modelType: "qwen2", attentionBias: true, tied: true, seed: 44 },
      "qwen2",
    ],
  ];
  for (const [name, spec, arch] of variants) {
    test(`${name}: F32 logits = the safetensors model's bit for bit; F16, Q8_0 = the model of the stored values`, async () => {
      const tiny = makeTinyLlama({ P: 32, ...spec });
      const ref = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors));
      const want = ref.forward([PROMPT]).data.slice();
      for (const type of ["F32", "F16", "Q8_0"] as const) {
        const bytes = llamaToGguf(tiny.config, tiny.tensors, { type, arch });
        const model = await loadGgufModel(bytes);
        expect(model).toBeInstanceOf(LlamaForCausalLM);
        expect(model.config).toMatchObject({
          model_type: arch,
          num_key_value_heads: tiny.config.num_key_value_heads,
          head_dim: tiny.config.head_dim,
          tie_word_embeddings: spec.tied ?? false,
          attention_bias: spec.attentionBias ?? false,
        });
        const got = model.forward([PROMPT]).data;
        if (type === "F32") expect(Array.from(got)).toEqual(Array.from(want));
        else {
          const stored = await LlamaForCausalLM.fromWeights(tiny.config, source(roundTripAll(tiny.tensors, type)));
          expect(Array.from(got)).toEqual(Array.from(stored.forward([PROMPT]).data));
          stored.dispose();
          // the storage error, small against the logits: these random nets amplify the per-weight
          // error (F16 ~3e-4, Q8_0 ~6e-3 relative) about 6× (measured: F16 ≤ 1.9e-3, Q8_0 ≤ 6e-2)
          expect(relRms(got, want)).toBeLessThan(type === "F16" ? 0.005 : 0.12);
        }
        model.dispose();
      }
      ref.dispose();
    });
  }

  test("a llama file whose Q/K were not permuted by the converter gives other logits (the un-permutation is real)", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 45 });
    const ref = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors));
    const want = ref.forward([PROMPT]).data;
    const right = await loadGgufModel(llamaToGguf(tiny.config, tiny.tensors));
    const wrong = await loadGgufModel(llamaToGguf(tiny.config, tiny.tensors, { permute: false }));
    expect(Array.from(right.forward([PROMPT]).data)).toEqual(Array.from(want));
    expect(maxDiff(wrong.forward([PROMPT]).data, want)).toBeGreaterThan(0.01 * maxAbs(want));
    for (const m of [ref, right, wrong]) m.dispose();
  });

  test("GgufWeights.blocks (the packed-kernel hook): stored Q8_0 blocks with rows in HF order; none for transposed matrices", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 47 });
    const file = await openGguf(llamaToGguf(tiny.config, tiny.tensors, { type: "Q8_0" }));
    const { weights } = ggufPlan(file);
    for (const name of [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.1.self_attn.k_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
    ]) {
      const b = (await weights.blocks(name))!;
      expect(b.type).toBe("Q8_0");
      expect(b.shape).toEqual(tiny.tensors.get(name)!.shape);
      const n = b.shape[0] * b.shape[1];
      expect(Array.from(dequantize("Q8_0", b.data, n))).toEqual(Array.from((await weights.get(name)).data));
    }
    await file.close();
    const g = makeTiny({ E: 32, H: 4, V: 40, P: 16, seed: 48 });
    const gfile = await openGguf(gpt2ToGguf(g.config, g.tensors, { type: "Q8_0" }));
    const gw = ggufPlan(gfile).weights;
    expect(await gw.blocks("transformer.h.0.attn.c_attn.weight")).toBeUndefined();
    expect((await gw.blocks("transformer.wte.weight"))?.type).toBe("Q8_0");
    await gfile.close();
  });

  test("unpermuteRows inverts llama.cpp's permute: row h·d + 2i + j ← HF row h·d + j·d/2 + i", () => {
    // 2 heads of d = 4 over 1 column: HF rows 0..7; permuted: head 0 → [0, 2, 1, 3], head 1 → [4, 6, 5, 7]
    const permuted = Float32Array.from([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(unpermuteRows(permuted, 8, 1, 2))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const bytes = Uint8Array.from([0, 0, 2, 2, 1, 1, 3, 3]);
    expect(Array.from(unpermuteRows(bytes, 4, 2, 1))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
  });

  test("Llama 3 rope scaling from rope_freqs.weight = HF's llama3 rope_scaling", async () => {
    const scaling = {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    };
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 64, theta: 100, ropeScaling: scaling, seed: 46 });
    const ref = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors));
    // convert_hf_to_gguf.py: factors 1/((1 − s)/factor + s) per frequency, as an F32 tensor
    const d = 16;
    const factors = new Float32Array(d / 2);
    for (let j = 0; j < d / 2; j++) {
      const wavelen = (2 * Math.PI) / (1 / 100 ** ((2 * j) / d));
      const [lowW, highW] = [16 / 1, 16 / 4];
      if (wavelen < highW) factors[j] = 1;
      else if (wavelen > lowW) factors[j] = 8;
      else {
        const s = (16 / wavelen - 1) / (4 - 1);
        factors[j] = 1 / ((1 - s) / 8 + s);
      }
    }
    const { rope_scaling: _, ...cfg } = tiny.config;
    const extraTensors = [{ name: "rope_freqs.weight", shape: [d / 2], data: factors, type: "F32" as const }];
    const model = await loadGgufModel(llamaToGguf({ ...cfg, rope_scaling: null }, tiny.tensors, { extraTensors }));
    const got = model.forward([PROMPT.concat(PROMPT, PROMPT)]).data;
    const want = ref.forward([PROMPT.concat(PROMPT, PROMPT)]).data;
    expect(maxDiff(got, want)).toBeLessThan(1e-4 * maxAbs(want));
    model.dispose();
    ref.dispose();
  });
});

describe("GPT-2 from GGUF", () => {
  const variants: [string, TinySpec][] = [
    ["tied (no output.weight)", { E: 32, H: 4, V: 50, P: 24, seed: 51 }],
    ["untied output, 3 layers, n_inner 64", { E: 64, H: 2, L: 3, V: 45, P: 24, inner: 64, lmHead: "untied", seed: 52 }],
  ];
  for (const [name, spec] of variants) {
    test(`${name}: F32 logits = the safetensors model's bit for bit; F16, Q8_0 = the model of the stored values`, async () => {
      const tiny = makeTiny(spec);
      const ref = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
      const want = ref.forward([PROMPT]).data.slice();
      for (const type of ["F32", "F16", "Q8_0"] as const) {
        const model = await loadGgufModel(gpt2ToGguf(tiny.config, tiny.tensors, { type }));
        expect(model).toBeInstanceOf(GPT2LMHeadModel);
        const got = model.forward([PROMPT]).data;
        if (type === "F32") expect(Array.from(got)).toEqual(Array.from(want));
        else {
          // the stored matrices are the transposed Conv1D weights: round-trip them in that layout
          const stored = new Map(
            [...tiny.tensors].map(([k, t]) => {
              if (!/(c_attn|c_proj|c_fc)\.weight$/.test(k)) return [k, roundTrip(t, type)] as const;
              const tt = transpose(t);
              return [k, transpose(roundTrip(tt, type))] as const;
            }),
          );
          const s = await GPT2LMHeadModel.fromWeights(tiny.config, source(stored));
          expect(Array.from(got)).toEqual(Array.from(s.forward([PROMPT]).data));
          s.dispose();
          expect(relRms(got, want)).toBeLessThan(type === "F16" ? 0.005 : 0.12);
        }
        model.dispose();
      }
      ref.dispose();
    });
  }
});

function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const x = t.data as Float32Array;
  const y = new Float32Array(x.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) y[j * r + i] = x[i * c + j];
  return new Tensor(y, [c, r], "f32");
}

describe("one .gguf file runs by itself", () => {
  test("AutoModelForCausalLM.fromPretrained(path.gguf), a file: URL and a Blob give the same model", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 61 });
    const bytes = llamaToGguf(tiny.config, tiny.tensors, { type: "Q8_0" });
    const path = join(root, "tiny-q8.gguf");
    writeFileSync(path, bytes);
    const a = await AutoModelForCausalLM.fromPretrained(path);
    const b = await AutoModelForCausalLM.fromPretrained(new URL(`file://${path}`));
    const c = await AutoModelForCausalLM.fromPretrained(new Blob([bytes]));
    const want = Array.from(a.forward([PROMPT]).data);
    for (const m of [b, c]) expect(Array.from(m.forward([PROMPT]).data)).toEqual(want);
    for (const m of [a, b, c]) m.dispose();
  });

  test("a file written part by part (ggufParts, for big files) has writeGguf's bytes and loads", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 62 });
    const g = llamaGguf(tiny.config, tiny.tensors, { type: "Q4_0" });
    const parts = ggufParts(g.meta, g.tensors);
    expect(parts.length).toBe(g.tensors.length + 1);
    for (const p of parts) expect(p.length % 32).toBe(0); // each part starts aligned
    const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      joined.set(p, off);
      off += p.length;
    }
    const whole = llamaToGguf(tiny.config, tiny.tensors, { type: "Q4_0" });
    expect(joined).toEqual(whole);
    const m = await loadGgufModel(new Blob([joined]));
    expect(m.forward([PROMPT]).shape).toEqual([1, PROMPT.length, tiny.config.vocab_size]);
    m.dispose();
  });
});

describe("bad GGUF input: typed errors naming the key or tensor", () => {
  const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 81 });
  const file = (opts: Parameters<typeof llamaToGguf>[2] = {}, patch: (t: Map<string, Tensor>) => void = () => {}) => {
    const tensors = new Map(tiny.tensors);
    patch(tensors);
    return llamaToGguf(tiny.config, tensors, opts);
  };
  const fails = async (bytes: Uint8Array, type: new (...a: never[]) => Error, message: RegExp) => {
    const e = await loadGgufModel(bytes).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(type);
    expect((e as Error).message).toMatch(message);
  };

  test("a missing metadata key", async () => {
    await fails(
      file({ extraMeta: { "llama.block_count": undefined } }),
      GgufError,
      /missing metadata "llama\.block_count"/,
    );
    await fails(
      file({ extraMeta: { "llama.attention.layer_norm_rms_epsilon": undefined } }),
      GgufError,
      /"llama\.attention\.layer_norm_rms_epsilon"/,
    );
    await fails(file({ extraMeta: { "general.architecture": undefined } }), GgufError, /"general\.architecture"/);
  });

  test("metadata of the wrong type", async () => {
    await fails(
      file({ extraMeta: { "llama.embedding_length": { t: "str", v: "64" } } }),
      GgufError,
      /metadata "llama\.embedding_length": expected a non-negative integer, got "64"/,
    );
    await fails(
      file({ extraMeta: { "llama.rope.freq_base": { t: "str", v: "1e4" } } }),
      GgufError,
      /"llama\.rope\.freq_base": expected a number/,
    );
    await fails(
      file({ extraMeta: { "llama.attention.head_count_kv": { t: "arr", elem: "u32", v: [2, 2] } } }),
      GgufError,
      /"llama\.attention\.head_count_kv"/,
    );
    // consistency rules of the config, addressed to the GGUF key
    await fails(
      file({ extraMeta: { "llama.attention.head_count_kv": { t: "u32", v: 3 } } }),
      ConfigError,
      /config: llama\.attention\.head_count_kv: num_key_value_heads: 3 does not divide num_attention_heads/,
    );
    await fails(
      file({ extraMeta: { "llama.attention.head_count": { t: "u32", v: 0 } } }),
      ConfigError,
      /llama\.attention\.head_count: /,
    );
  });

  test("sizes that would plan loops or tables are checked against the tensors first (no hang, no huge allocation)", async () => {
    await fails(
      file({ extraMeta: { "llama.block_count": { t: "u64", v: 2 ** 40 } } }),
      WeightsError,
      /metadata "llama\.block_count" is 1099511627776 but the file has no tensor "blk\.1099511627775\.attn_norm\.weight"/,
    );
    await fails(
      file({ extraMeta: { "llama.embedding_length": { t: "u32", v: 2 ** 31 } } }),
      WeightsError,
      /tensor "token_embd\.weight" has ne \[64, 50\]: ne\[0\] = 64 does not match metadata "llama\.embedding_length" = 2147483648/,
    );
    await fails(
      file({
        extraMeta: {
          "llama.attention.key_length": { t: "u32", v: 2 ** 30 },
          "llama.attention.value_length": undefined,
          "llama.rope.dimension_count": undefined,
        },
      }),
      WeightsError,
      /tensor "blk\.0\.attn_q\.weight" .* does not match head_count × head width \(4 × 1073741824\)/,
    );
    // an absurd context_length fails in the heap plan with a typed error; contextLength caps it
    await fails(file({ extraMeta: { "llama.context_length": { t: "u64", v: 2 ** 40 } } }), WasmError, /wasm32 memory/);
    const capped = await loadGgufModel(file({ extraMeta: { "llama.context_length": { t: "u64", v: 2 ** 40 } } }), {
      contextLength: 16,
    });
    expect(capped.config).toMatchObject({ max_position_embeddings: 16 });
    const ref = await loadGgufModel(file());
    expect(Array.from(capped.forward([PROMPT]).data)).toEqual(Array.from(ref.forward([PROMPT]).data));
    for (const m of [capped, ref]) m.dispose();
    const g = makeTiny({ E: 32, H: 4, V: 40, P: 16, seed: 82 });
    await expect(loadGgufModel(gpt2ToGguf(g.config, g.tensors), { contextLength: 8 })).rejects.toThrow(InputError);
  });

  test("an unknown architecture, an unsupported rope scaling, partial rotary", async () => {
    await fails(
      file({ extraMeta: { "general.architecture": { t: "str", v: "falcon" } } }),
      ConfigError,
      /general\.architecture: unsupported architecture "falcon"/,
    );
    await fails(
      file({ extraMeta: { "llama.rope.scaling.type": { t: "str", v: "yarn" } } }),
      ConfigError,
      /llama\.rope\.scaling\.type: unsupported rope scaling type "yarn"/,
    );
    await fails(
      file({ extraMeta: { "llama.rope.dimension_count": { t: "u32", v: 8 } } }),
      ConfigError,
      /llama\.rope\.dimension_count: .*partial rotary/,
    );
  });

  test("a tensor of the wrong shape, a missing tensor, an unexpected one", async () => {
    const k = "model.layers.1.self_attn.k_proj.weight";
    await fails(
      file({}, (t) => t.set(k, new Tensor(new Float32Array(24 * 64), [24, 64], "f32"))),
      WeightsError,
      /tensor "blk\.1\.attn_k\.weight" has ne \[64, 24\] \(shape \[24, 64\]\), expected shape \[32, 64\]/,
    );
    await fails(
      file({}, (t) => t.delete("model.layers.1.mlp.up_proj.weight")),
      WeightsError,
      /GGUF file has no tensor "blk\.1\.ffn_up\.weight"/,
    );
    const extra = file({
      extraTensors: [{ name: "blk.7.attn_q.weight", shape: [4, 32], data: new Float32Array(128), type: "F32" }],
    });
    await fails(extra, WeightsError, /unexpected tensor "blk\.7\.attn_q\.weight"/);
    const m = await loadGgufModel(extra, { strict: false });
    m.dispose();
  });

  test("an unsupported weight type is named with its tensor; an unknown type id fails in the reader", async () => {
    const n = 32 * 64;
    const withType = (typeId: number, bytes: number) =>
      file(
        {
          extraTensors: [
            {
              name: "blk.0.ffn_down.weight",
              shape: [64, 64],
              data: new Float32Array(0),
              type: "F32",
              typeId,
              raw: new Uint8Array(bytes),
            },
          ],
        },
        (t) => t.delete("model.layers.0.mlp.down_proj.weight"),
      );
    // Q5_0 (type 6): a valid ggml type this package does not dequantize
    await fails(
      withType(6, ((64 * 64) / 32) * 22),
      GgufError,
      /tensor "blk\.0\.ffn_down\.weight" has weight type Q5_0, which is not supported/,
    );
    await fails(withType(99, n), GgufError, /tensor "blk\.0\.ffn_down\.weight": unsupported ggml type 99/);
  });

  test("truncated files fail with a GgufError, never anything else", async () => {
    const bytes = file({ type: "Q8_0" });
    // (the last bytes may be padding after the last tensor: cut inside its data)
    for (const cut of [0, 10, 100, 1000, bytes.length >> 1, bytes.length - 64]) {
      const e = await loadGgufModel(bytes.subarray(0, cut)).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e, `cut at ${cut}`).toBeInstanceOf(GgufError);
    }
  });
});

describe("hostile GGUF models (seeded)", () => {
  /** Loads, or fails with one of our typed errors: never a raw TypeError/RangeError, a crash or a hang. */
  const typedOrLoads = async (bytes: Uint8Array, what: string) => {
    try {
      const m = await loadGgufModel(bytes);
      m.forward([[1, 2]]);
      m.dispose();
    } catch (e) {
      expect(e, what).toBeInstanceOf(WasmformerError);
    }
  };

  test("every numeric metadata value replaced by edge values", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 91 });
    const keys = [
      "llama.block_count",
      "llama.context_length",
      "llama.embedding_length",
      "llama.feed_forward_length",
      "llama.attention.head_count",
      "llama.attention.head_count_kv",
      "llama.rope.freq_base",
      "llama.attention.layer_norm_rms_epsilon",
      "llama.rope.dimension_count",
      "llama.attention.key_length",
    ];
    const values = [0, 1, 3, 7, 31, 2 ** 31, 2 ** 40, 2 ** 53 - 1];
    for (const key of keys)
      for (const v of values)
        await typedOrLoads(
          llamaToGguf(tiny.config, tiny.tensors, { extraMeta: { [key]: { t: "u64", v } } }),
          `${key} = ${v}`,
        );
  });

  test("random bytes of the metadata region flipped (200 seeded mutations)", async () => {
    const tiny = makeTinyLlama({ D: 64, H: 4, KV: 2, I: 64, P: 32, seed: 92 });
    const good = llamaToGguf(tiny.config, tiny.tensors);
    const headerEnd = (await openGguf(good)).dataOffset;
    const rand = mulberry32(7);
    for (let i = 0; i < 200; i++) {
      const b = good.slice();
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
        b[Math.floor(rand() * headerEnd)] ^= 1 << Math.floor(rand() * 8);
      await typedOrLoads(b, `mutation ${i}`);
    }
  });
});
