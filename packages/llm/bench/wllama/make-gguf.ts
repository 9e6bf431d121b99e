/**
 * A SmolLM2-135M-shaped Llama GGUF with seeded random weights, as llama.cpp's converter writes it
 * (tools/test-utils/src/gguf.ts: names, Q/K permutation, `llama.*` metadata), for the wllama
 * benchmark. Loaded by bench/wllama.mjs through Vite's module runner (it imports TypeScript).
 *
 * Shape: 30 layers, hidden 576, 9 heads / 3 KV heads (head_dim 64), intermediate 1536, vocab 49152,
 * tied embeddings, rope_theta 100000, rms eps 1e-5. Matrices ~ N(0, 0.02²), norm weights 1.
 * Matrices are stored F32, Q8_0 or Q4_0 (token_embd too: it is also the tied LM head), quantized
 * with core's quantizeQ8_0 / quantizeQ4_0.
 *
 * Tokenizer (`tokenizer.ggml.model` "gpt2", pre "smollm"): 3 control tokens (<|endoftext|>,
 * <|im_start|>, <|im_end|>; bos 1, eos 2, as SmolLM2-Instruct), the byte-level symbols (GPT-2's
 * byte↔unicode map) of the ASCII bytes 0x01–0x7f, then merges up to 49152 tokens, each joining two
 * earlier tokens into a new one (pairs drawn by a seeded PRNG, biased to short tokens). llama.cpp
 * loads a BPE vocabulary only with merges and with every normal token made of byte-level symbols;
 * this one has both, so both engines build a real tokenizer from it. ASCII only, so that any
 * sequence of tokens a random model generates is valid UTF-8: llama-server (inside wllama) fails
 * the request on invalid UTF-8 in its JSON output. Text is not meaningful; the benchmark feeds token ids.
 */
import { closeSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { quantizeQ4_0, quantizeQ8_0, Tensor } from "@wasmformer/core";
import { ggufParts, llamaGguf, type TokenizerMeta, type WriteType } from "../../../../tools/test-utils/src/gguf.ts";
import { mulberry32 } from "../../../../tools/test-utils/src/prng.ts";
import type { LlamaConfig } from "../../src/llama.ts";

/** The model's config.json (shared with bench/quant.mjs, which benchmarks the same shape). */
export const CONFIG = JSON.parse(readFileSync(new URL("../smollm2-shape.json", import.meta.url), "utf8")) as Pick<
  LlamaConfig,
  | "vocab_size"
  | "hidden_size"
  | "intermediate_size"
  | "num_hidden_layers"
  | "num_attention_heads"
  | "num_key_value_heads"
>;

/** GPT-2's `bytes_to_unicode` for the bytes 0x01–0x7f: printable bytes map to themselves, the rest to U+0100 onwards. */
function asciiByteSymbols(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const s = String.fromCodePoint(keep(b) ? b : 256 + n++);
    if (b >= 0x01 && b <= 0x7f) out.push(s);
  }
  return out;
}

/** A byte-level BPE vocabulary of `size` tokens with merges (see the file comment). */
export function syntheticTokenizer(size: number, seed = 7): TokenizerMeta {
  const rand = mulberry32(seed);
  const tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", ...asciiByteSymbols()];
  const types = tokens.map((_, i) => (i < 3 ? 3 : 1));
  const seen = new Set(tokens);
  const merges: string[] = [];
  const first = 3;
  while (tokens.length < size) {
    // parts from the earlier tokens, favouring early (short) ones: index = first + n·u²
    const n = tokens.length - first;
    const a = tokens[first + Math.floor(n * rand() ** 2)];
    const b = tokens[first + Math.floor(n * rand() ** 2)];
    const ab = a + b;
    if (ab.length > 16 || seen.has(ab)) continue;
    seen.add(ab);
    tokens.push(ab);
    types.push(1);
    merges.push(`${a} ${b}`);
  }
  return { model: "gpt2", pre: "smollm", tokens, types, merges, bos: 1, eos: 2, addBos: false };
}

/** The HF tensors of CONFIG: matrices ~ N(0, 0.02²) (seeded Box–Muller), norm weights 1. */
function randomTensors(seed: number): Map<string, Tensor> {
  const c = CONFIG;
  const rand = mulberry32(seed);
  const normal = (n: number) => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = 0.02 * Math.sqrt(-2 * Math.log(1 - rand()));
      const t = 2 * Math.PI * rand();
      x[i] = r * Math.cos(t);
      if (i + 1 < n) x[i + 1] = r * Math.sin(t);
    }
    return x;
  };
  const D = c.hidden_size;
  const I = c.intermediate_size;
  const KV = (D / c.num_attention_heads) * c.num_key_value_heads;
  const m = new Map<string, Tensor>();
  const mat = (name: string, rows: number, cols: number) =>
    m.set(name, new Tensor(normal(rows * cols), [rows, cols], "f32"));
  const ones = (name: string) => m.set(name, new Tensor(new Float32Array(D).fill(1), [D], "f32"));
  mat("model.embed_tokens.weight", c.vocab_size, D);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    ones(`${p}input_layernorm.weight`);
    mat(`${p}self_attn.q_proj.weight`, D, D);
    mat(`${p}self_attn.k_proj.weight`, KV, D);
    mat(`${p}self_attn.v_proj.weight`, KV, D);
    mat(`${p}self_attn.o_proj.weight`, D, D);
    ones(`${p}post_attention_layernorm.weight`);
    mat(`${p}mlp.gate_proj.weight`, I, D);
    mat(`${p}mlp.up_proj.weight`, I, D);
    mat(`${p}mlp.down_proj.weight`, D, I);
  }
  ones("model.norm.weight");
  return m;
}

/** Write the model with matrices of `type` to `path` (the same weights for every type). */
export function writeModel(path: string, type: WriteType): void {
  const { meta, tensors } = llamaGguf(CONFIG, randomTensors(20241206), {
    type,
    tokenizer: syntheticTokenizer(CONFIG.vocab_size),
    extraMeta: { "general.name": { t: "str", v: "SmolLM2-135M-shaped random" } },
  });
  // the blocks from core's quantizers (ggml's quantize_row_q8_0_ref / q4_0_ref)
  for (const t of tensors)
    if (t.type === "Q8_0" || t.type === "Q4_0") t.raw = (t.type === "Q8_0" ? quantizeQ8_0 : quantizeQ4_0)(t.data);
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, "w");
  for (const part of ggufParts(meta, tensors)) writeSync(fd, part);
  closeSync(fd);
  renameSync(tmp, path);
}
