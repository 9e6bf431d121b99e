/**
 * Decoders from one GGUF file (llama.cpp's format, read by core's `openGguf`): the metadata becomes
 * our Hugging Face style config, the tensors are served under Hugging Face names, and the
 * tokenizer comes from `tokenizer.ggml.*` (gguf-tokenizer.ts). Architectures: `llama` (also
 * Mistral, which llama.cpp writes as llama), `qwen2` and `gpt2`.
 *
 * What llama.cpp's `convert_hf_to_gguf.py` changes, and what is undone here (all in `tensorMap`):
 *
 * | GGUF                          | Hugging Face                                  | at load                          |
 * |-------------------------------|-----------------------------------------------|----------------------------------|
 * | `token_embd`, `output`        | `embed_tokens` / `wte`, `lm_head`             | (`output` absent: tied)          |
 * | `blk.N.attn_q`, `attn_k` (llama) | `q_proj`, `k_proj` rows permuted for ggml's rope | rows un-permuted (`unpermute`) |
 * | `blk.N.attn_qkv` … (gpt2)     | Conv1D `c_attn`, `c_proj`, `c_fc` [in, out]   | transposed back                  |
 * | ne = [in, out]                | row-major [out, in]                           | (core: shape = ne reversed)      |
 *
 * llama.cpp's permutation (`LlamaModel.permute`) views the rows of one head (width d) as
 * (2, d/2) and swaps the axes: GGUF row h·d + 2i + j holds HF row h·d + j·d/2 + i (j ∈ {0, 1}),
 * so that ggml's rope rotates adjacent pairs where HF rotates (i, i + d/2). Q uses the query heads,
 * K the key/value heads; biases are permuted alike. Qwen2 files are not permuted (NeoX rope).
 *
 * Weights are dequantized to f32 on load. `GgufWeights.blocks` is the hook for kernels that
 * compute on packed blocks: the stored blocks of a tensor with its rows already in HF order
 * (a row permutation moves whole rows of blocks), or undefined where a transpose is needed.
 */
import {
  ConfigError,
  GGUF_DECODABLE,
  GgufError,
  type GgufFile,
  type GgufValue,
  InputError,
  openGguf,
  type SafetensorsSource,
  showValue,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import { type GPT2Config, parseGPT2Config } from "./config.js";
import type { DecoderArch } from "./decoder-arch.js";
import { ggufTokenizer } from "./gguf-tokenizer.js";
import { GPT2LMHeadModel, type GPT2Options, gpt2Arch, type WeightSource } from "./gpt2-model.js";
import { type LlamaConfig, llamaArch, parseLlamaConfig } from "./llama.js";
import { LlamaForCausalLM } from "./llama-model.js";

/** `general.architecture` values this package loads. */
export const GGUF_ARCHITECTURES = ["llama", "qwen2", "gpt2"] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];

// ---------------------------------------------------------------------------------------------
// metadata

/** Typed reads of GGUF metadata; a missing or ill-typed key is a `GgufError` naming it. */
export class GgufMeta {
  constructor(readonly map: ReadonlyMap<string, GgufValue>) {}

  has(key: string): boolean {
    return this.map.has(key);
  }
  private bad(key: string, expected: string, v: unknown): never {
    throw new GgufError(`metadata "${key}": expected ${expected}, got ${describe(v)}`, { key });
  }
  private need(key: string, why?: string): GgufValue {
    const v = this.map.get(key);
    if (v === undefined) throw new GgufError(`missing metadata "${key}"${why ? ` (${why})` : ""}`, { key });
    return v;
  }
  /** A non-negative integer (any GGUF integer type). */
  int(key: string, dflt?: number): number {
    const v = this.map.get(key) ?? (dflt === undefined ? this.need(key) : dflt);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.bad(key, "a non-negative integer", v);
    return v as number;
  }
  intOrNull(key: string): number | null {
    return this.map.has(key) ? this.int(key) : null;
  }
  /** A finite number (FLOAT32/FLOAT64 or an integer). */
  num(key: string, dflt?: number): number {
    const v = this.map.get(key) ?? (dflt === undefined ? this.need(key) : dflt);
    if (typeof v !== "number" || !Number.isFinite(v)) this.bad(key, "a number", v);
    return v as number;
  }
  str(key: string, dflt?: string): string {
    const v = this.map.get(key) ?? (dflt === undefined ? this.need(key) : dflt);
    if (typeof v !== "string") this.bad(key, "a string", v);
    return v as string;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.map.get(key) ?? dflt;
    if (typeof v !== "boolean") this.bad(key, "a boolean", v);
    return v as boolean;
  }
  /** An array of strings. */
  strings(key: string): string[] {
    const v = this.need(key);
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) this.bad(key, "an array of strings", v);
    return v as string[];
  }
  /** A numeric array of `n` elements (integer or float elements), or undefined when absent. */
  numbers(key: string, n: number): ArrayLike<number> | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    const ok = ArrayBuffer.isView(v) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array);
    if (!ok) this.bad(key, "an array of numbers", v);
    const a = v as unknown as ArrayLike<number>;
    if (a.length !== n) this.bad(key, `${n} elements (one per token)`, `${a.length} elements`);
    return a;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length} ${v.length > 0 ? typeof v[0] : ""} values`.trim();
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<number>).length}`;
  if (typeof v === "bigint") return `the integer ${v}`;
  return showValue(v);
}

/** The architecture of a GGUF file (`general.architecture`); any other is a `ConfigError` naming it. */
export function ggufArchitecture(meta: GgufMeta): GgufArchitecture {
  const a = meta.str("general.architecture");
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(a))
    throw new ConfigError(
      `unsupported architecture ${JSON.stringify(a)} (supported: ${GGUF_ARCHITECTURES.join(", ")})`,
      "general.architecture",
    );
  return a as GgufArchitecture;
}

/**
 * The Hugging Face `config.json` object a GGUF file's metadata describes (`<arch>.block_count`,
 * `.embedding_length`, `.feed_forward_length`, `.attention.head_count[_kv]`, `.context_length`,
 * norm epsilon, rope base and scaling; the vocabulary size from the token list, else
 * `<arch>.vocab_size`, else the rows of `token_embd`). `has` tells which tensors the file stores
 * (untied `output`, attention biases).
 */
export function ggufConfig(
  meta: GgufMeta,
  has: (tensor: string) => boolean,
  embedRows?: number,
): Record<string, unknown> {
  const a = ggufArchitecture(meta);
  const k = (s: string) => `${a}.${s}`;
  const tokens = meta.has("tokenizer.ggml.tokens") ? meta.strings("tokenizer.ggml.tokens").length : undefined;
  const vocab = tokens ?? (meta.has(k("vocab_size")) ? meta.int(k("vocab_size")) : embedRows);
  if (vocab === undefined)
    throw new GgufError(`missing metadata "tokenizer.ggml.tokens" (the vocabulary size)`, {
      key: "tokenizer.ggml.tokens",
    });
  const ids = {
    bos_token_id: meta.intOrNull("tokenizer.ggml.bos_token_id"),
    eos_token_id: meta.intOrNull("tokenizer.ggml.eos_token_id"),
  };
  if (a === "gpt2") {
    return {
      model_type: "gpt2",
      vocab_size: vocab,
      n_positions: meta.int(k("context_length")),
      n_embd: meta.int(k("embedding_length")),
      n_layer: meta.int(k("block_count")),
      n_head: meta.int(k("attention.head_count")),
      n_inner: meta.int(k("feed_forward_length")),
      layer_norm_epsilon: meta.num(k("attention.layer_norm_epsilon")),
      activation_function: "gelu_new", // ggml's gelu is the tanh approximation
      tie_word_embeddings: !has("output.weight"),
      ...ids,
    };
  }
  const E = meta.int(k("embedding_length"));
  const H = meta.int(k("attention.head_count"));
  const KV = meta.int(k("attention.head_count_kv"), H);
  const headDim = meta.intOrNull(k("attention.key_length"));
  const d = headDim ?? (H > 0 ? E / H : 0);
  const vDim = meta.intOrNull(k("attention.value_length"));
  if (vDim !== null && vDim !== d)
    throw new ConfigError(
      `value heads of width ${vDim} differ from key heads of width ${d}: not supported`,
      k("attention.value_length"),
    );
  const rot = meta.intOrNull(k("rope.dimension_count"));
  if (rot !== null && Number.isInteger(d) && d > 0 && rot !== d)
    throw new ConfigError(
      `rotary embedding over ${rot} of the ${d} features of a head (partial rotary) is not supported`,
      k("rope.dimension_count"),
    );
  return {
    model_type: a,
    vocab_size: vocab,
    hidden_size: E,
    intermediate_size: meta.int(k("feed_forward_length")),
    num_hidden_layers: meta.int(k("block_count")),
    num_attention_heads: H,
    num_key_value_heads: KV,
    ...(headDim !== null ? { head_dim: headDim } : {}),
    hidden_act: "silu",
    max_position_embeddings: meta.int(k("context_length")),
    rms_norm_eps: meta.num(k("attention.layer_norm_rms_epsilon")),
    rope_theta: meta.num(k("rope.freq_base"), 10000),
    rope_scaling: ropeScaling(meta, a),
    attention_bias: has("blk.0.attn_q.bias"),
    mlp_bias: has("blk.0.ffn_up.bias"),
    tie_word_embeddings: !has("output.weight"),
    ...ids,
  };
}

/** `<arch>.rope.scaling.type` / `.factor` (and the older `<arch>.rope.scale_linear`) → HF `rope_scaling`. */
function ropeScaling(meta: GgufMeta, a: string): Record<string, unknown> | null {
  const typeKey = `${a}.rope.scaling.type`;
  if (meta.has(typeKey)) {
    const t = meta.str(typeKey);
    if (t === "none") return null;
    if (t !== "linear")
      throw new ConfigError(`unsupported rope scaling type ${JSON.stringify(t)} (supported: none, linear)`, typeKey);
    return { rope_type: "linear", factor: meta.num(`${a}.rope.scaling.factor`) };
  }
  if (meta.has(`${a}.rope.scale_linear`)) {
    const f = meta.num(`${a}.rope.scale_linear`);
    return f === 1 ? null : { rope_type: "linear", factor: f };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// tensors

/** How a GGUF tensor becomes a Hugging Face one. */
export type GgufTransform =
  | { op: "copy" }
  /** undo llama.cpp's Q/K permutation over `heads` heads */
  | { op: "unpermute"; heads: number }
  /** Linear [out, in] → Conv1D [in, out] (GPT-2) */
  | { op: "transpose" };

export interface GgufTensorMapping {
  /** Hugging Face name → GGUF name and transform, for every tensor of the file the model reads. */
  map: Map<string, { gguf: string; transform: GgufTransform }>;
  /** GGUF tensors read outside the weights (Llama 3's `rope_freqs.weight`). */
  aux: Set<string>;
}

/**
 * The one table from GGUF tensor names to ours (`blk.N.attn_q.weight` → `model.layers.N.self_attn.q_proj.weight`, …)
 * for a config from `ggufConfig`. Only names the file holds are listed (the model's loader reports
 * missing ones).
 */
export function tensorMap(
  arch: GgufArchitecture,
  config: Record<string, unknown>,
  has: (tensor: string) => boolean,
): GgufTensorMapping {
  const map = new Map<string, { gguf: string; transform: GgufTransform }>();
  const copy: GgufTransform = { op: "copy" };
  const add = (hf: string, gguf: string, transform: GgufTransform = copy) => {
    if (has(gguf)) map.set(hf, { gguf, transform });
  };
  const L = config.num_hidden_layers ?? config.n_layer;
  if (arch === "gpt2") {
    const T: GgufTransform = { op: "transpose" };
    add("transformer.wte.weight", "token_embd.weight");
    add("transformer.wpe.weight", "position_embd.weight");
    for (let i = 0; i < (L as number); i++) {
      const [b, p] = [`blk.${i}.`, `transformer.h.${i}.`];
      for (const s of ["weight", "bias"]) {
        add(`${p}ln_1.${s}`, `${b}attn_norm.${s}`);
        add(`${p}attn.c_attn.${s}`, `${b}attn_qkv.${s}`, s === "weight" ? T : copy);
        add(`${p}attn.c_proj.${s}`, `${b}attn_output.${s}`, s === "weight" ? T : copy);
        add(`${p}ln_2.${s}`, `${b}ffn_norm.${s}`);
        add(`${p}mlp.c_fc.${s}`, `${b}ffn_up.${s}`, s === "weight" ? T : copy);
        add(`${p}mlp.c_proj.${s}`, `${b}ffn_down.${s}`, s === "weight" ? T : copy);
      }
    }
    add("transformer.ln_f.weight", "output_norm.weight");
    add("transformer.ln_f.bias", "output_norm.bias");
    add("lm_head.weight", "output.weight");
    return { map, aux: new Set() };
  }
  const H = config.num_attention_heads as number;
  const KV = config.num_key_value_heads as number;
  // llama.cpp permutes Q/K of llama files only (qwen2 uses ggml's NeoX rope, HF's layout)
  const q: GgufTransform = arch === "llama" ? { op: "unpermute", heads: H } : copy;
  const kk: GgufTransform = arch === "llama" ? { op: "unpermute", heads: KV } : copy;
  add("model.embed_tokens.weight", "token_embd.weight");
  for (let i = 0; i < (L as number); i++) {
    const [b, p] = [`blk.${i}.`, `model.layers.${i}.`];
    add(`${p}input_layernorm.weight`, `${b}attn_norm.weight`);
    add(`${p}post_attention_layernorm.weight`, `${b}ffn_norm.weight`);
    for (const s of ["weight", "bias"]) {
      add(`${p}self_attn.q_proj.${s}`, `${b}attn_q.${s}`, q);
      add(`${p}self_attn.k_proj.${s}`, `${b}attn_k.${s}`, kk);
      add(`${p}self_attn.v_proj.${s}`, `${b}attn_v.${s}`);
      add(`${p}self_attn.o_proj.${s}`, `${b}attn_output.${s}`);
      add(`${p}mlp.gate_proj.${s}`, `${b}ffn_gate.${s}`);
      add(`${p}mlp.up_proj.${s}`, `${b}ffn_up.${s}`);
      add(`${p}mlp.down_proj.${s}`, `${b}ffn_down.${s}`);
    }
  }
  add("model.norm.weight", "output_norm.weight");
  add("lm_head.weight", "output.weight");
  return { map, aux: new Set(has("rope_freqs.weight") ? ["rope_freqs.weight"] : []) };
}

/**
 * Rows of a row-major [rows, width] array (any element: `width` counts elements or bytes) from
 * llama.cpp's per-head (d/2, 2) order back to HF's (2, d/2): out row h·d + j·d/2 + i = in row h·d + 2i + j.
 */
export function unpermuteRows<T extends Float32Array | Uint8Array>(
  x: T,
  rows: number,
  width: number,
  heads: number,
): T {
  const d = rows / heads;
  const half = d / 2;
  const out = new (x.constructor as { new (n: number): T })(x.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const src = (h * d + 2 * i + j) * width;
        out.set(x.subarray(src, src + width), (h * d + j * half + i) * width);
      }
  return out;
}

/** A GGUF file as a `WeightSource` under Hugging Face names, dequantizing each tensor on `get`. */
export class GgufWeights implements WeightSource {
  constructor(
    readonly file: GgufFile,
    readonly mapping: GgufTensorMapping,
  ) {}

  names(): string[] {
    return [...this.mapping.map.keys()];
  }
  has(name: string): boolean {
    return this.mapping.map.has(name);
  }
  /** The GGUF name of a Hugging Face name. */
  ggufName(name: string): string {
    const m = this.mapping.map.get(name);
    if (!m) throw new WeightsError(`GGUF file has no tensor for "${name}"`, [name]);
    return m.gguf;
  }
  info(name: string): { shape: number[] } {
    const m = this.mapping.map.get(name);
    if (!m) throw new WeightsError(`GGUF file has no tensor for "${name}"`, [name]);
    const shape = this.file.info(m.gguf).shape.slice();
    return { shape: m.transform.op === "transpose" ? shape.reverse() : shape };
  }
  async get(name: string): Promise<Tensor<"f32">> {
    const m = this.mapping.map.get(name);
    if (!m) throw new WeightsError(`GGUF file has no tensor for "${name}"`, [name]);
    const t = await this.file.get(m.gguf);
    const [rows, cols] = t.shape.length === 2 ? t.shape : [t.shape[0], 1];
    if (m.transform.op === "unpermute")
      return new Tensor(unpermuteRows(t.data, rows, cols, m.transform.heads), t.shape.slice(), "f32");
    if (m.transform.op === "transpose") {
      const out = new Float32Array(t.data.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
      return new Tensor(out, [cols, rows], "f32");
    }
    return t;
  }

  /** The ggml type the tensor is stored as ("Q8_0", "F16", …). */
  storedType(name: string): string {
    return this.file.info(this.ggufName(name)).typeName;
  }

  /**
   * The packed engine's hook (`WeightSource.linearBlocks`): a matrix's stored blocks as the rows of
   * its Linear [out, in] form, which is how GGUF stores every matrix (ne = [in, out]): the rows of
   * `blocks`, and for GPT-2's Conv1D matrices the stored rows themselves (their [in, out] HF form
   * is the transpose).
   */
  async linearBlocks(name: string): Promise<{ type: string; data: Uint8Array }> {
    const m = this.mapping.map.get(name);
    if (!m) throw new WeightsError(`GGUF file has no tensor for "${name}"`, [name]);
    if (m.transform.op === "transpose")
      return { type: this.file.info(m.gguf).typeName, data: await this.file.raw(m.gguf) };
    return (await this.blocks(name))!;
  }

  /**
   * Hook for kernels on packed weights: the tensor's stored blocks (ggml type name, e.g. "Q8_0"),
   * rows in Hugging Face order, shape [rows, cols] in values; undefined when the tensor must be
   * transposed (GPT-2's Conv1D matrices), which packed blocks cannot be.
   */
  async blocks(name: string): Promise<{ type: string; shape: number[]; data: Uint8Array } | undefined> {
    const m = this.mapping.map.get(name);
    if (!m) throw new WeightsError(`GGUF file has no tensor for "${name}"`, [name]);
    if (m.transform.op === "transpose") return undefined;
    const info = this.file.info(m.gguf);
    let data = await this.file.raw(m.gguf);
    if (m.transform.op === "unpermute") {
      const rows = info.shape[0];
      data = unpermuteRows(data, rows, data.length / rows, m.transform.heads);
    }
    return { type: info.typeName, shape: info.shape.slice(), data };
  }
}

// ---------------------------------------------------------------------------------------------
// models

export interface GgufLoadOptions extends GPT2Options {
  /** Build the tokenizer from `tokenizer.ggml.*` (default true; a file without one has none). */
  tokenizer?: boolean;
  /**
   * Llama family: positions the model accepts, in place of `<arch>.context_length` (which sizes
   * the KV cache: 131072 positions of Llama 3.2 do not fit wasm32 memory). Default: the file's.
   */
  contextLength?: number;
}

/**
 * The config, tensor names and engine switches of a GGUF file, with every tensor the model reads
 * checked by its GGUF name (present, of the expected shape, of a type this package dequantizes)
 * before anything is allocated. Unused GGUF tensors are a `WeightsError` unless `strict: false`.
 */
export function ggufPlan(
  file: GgufFile,
  opts: { strict?: boolean; contextLength?: number } = {},
): {
  arch: GgufArchitecture;
  config: GPT2Config | LlamaConfig;
  decoder: DecoderArch;
  weights: GgufWeights;
} {
  const meta = new GgufMeta(file.metadata);
  const arch = ggufArchitecture(meta);
  const has = (n: string) => file.has(n);
  const raw = ggufConfig(meta, has, has("token_embd.weight") ? file.info("token_embd.weight").shape[0] : undefined);
  if (opts.contextLength !== undefined) {
    const n = opts.contextLength;
    if (arch === "gpt2")
      throw new InputError(
        "contextLength: GPT-2's positions are a learned table of context_length rows; it cannot be changed",
      );
    if (!Number.isInteger(n) || n < 1)
      throw new InputError(`contextLength must be a positive integer, got ${String(n)}`);
    raw.max_position_embeddings = n;
  }
  // parse (cheap, bounded), check the sizes that loops and tables are planned from, then build
  const config: GPT2Config | LlamaConfig =
    arch === "gpt2" ? inGgufTerms(arch, () => parseGPT2Config(raw)) : inGgufTerms(arch, () => parseLlamaConfig(raw));
  checkSizes(file, arch, config);
  const mapping = tensorMap(arch, raw, has);
  const weights = new GgufWeights(file, mapping);
  // `output` is present exactly when the config is untied, so the archs never miss lm_head here
  const decoder =
    arch === "gpt2" ? gpt2Arch(config as GPT2Config, weights) : llamaArch(config as LlamaConfig, (n) => weights.has(n));
  // every tensor the model reads: present, shaped as the config says, of a decodable type
  const missing: string[] = [];
  const every = tensorMap(arch, raw, () => true).map; // the GGUF names of absent tensors, for messages
  for (const s of decoder.specs) {
    const m = mapping.map.get(s.name);
    if (!m) {
      missing.push(every.get(s.name)?.gguf ?? s.name);
      continue;
    }
    const info = file.info(m.gguf);
    if (!(GGUF_DECODABLE as readonly string[]).includes(info.typeName))
      throw new GgufError(
        `tensor "${m.gguf}" has weight type ${info.typeName}, which is not supported (supported: ${GGUF_DECODABLE.join(", ")})`,
        { tensor: m.gguf },
      );
    const want = m.transform.op === "transpose" ? [...s.shape].reverse() : s.shape;
    if (info.shape.length !== want.length || info.shape.some((x, i) => x !== want[i]))
      throw new WeightsError(
        `tensor "${m.gguf}" has ne [${[...info.shape].reverse().join(", ")}] (shape [${info.shape.join(", ")}]), ` +
          `expected shape [${want.join(", ")}] (${decoder.describe}; HF name "${s.name}")`,
        [m.gguf],
      );
  }
  if (missing.length > 0)
    throw new WeightsError(
      `GGUF file has no tensor${missing.length > 1 ? "s" : ""} ${missing
        .slice(0, 5)
        .map((n) => `"${n}"`)
        .join(", ")}${missing.length > 5 ? ` and ${missing.length - 5} more` : ""}`,
      missing,
    );
  if (mapping.aux.has("rope_freqs.weight")) checkRopeFreqs(file, decoder);
  if (opts.strict ?? true) {
    const used = new Set([...decoder.specs.map((s) => mapping.map.get(s.name)!.gguf), ...mapping.aux]);
    const extra = file.names().filter((n) => !used.has(n));
    if (extra.length > 0)
      throw new WeightsError(
        `unexpected tensor${extra.length > 1 ? "s" : ""} ${extra
          .slice(0, 5)
          .map((n) => `"${n}"`)
          .join(", ")}${extra.length > 5 ? ` and ${extra.length - 5} more` : ""}: ` +
          `the ${arch} model (${decoder.layers} layers) does not use ${extra.length > 1 ? "them" : "it"} (pass strict: false to load anyway)`,
        extra,
      );
  }
  return { arch, config, decoder, weights };
}

/**
 * The sizes that plan loops and tables (layers, head width) against the file before anything is
 * built from them: `<arch>.block_count` blocks must exist, the embedding width must be
 * `token_embd`'s, the query width `attn_q`'s. A lie is a `WeightsError` naming tensor and key.
 */
function checkSizes(file: GgufFile, arch: GgufArchitecture, c: GPT2Config | LlamaConfig): void {
  const L = "n_layer" in c ? c.n_layer : c.num_hidden_layers;
  const last = `blk.${L - 1}.attn_norm.weight`;
  if (L > 0 && !file.has(last))
    throw new WeightsError(
      `metadata "${arch}.block_count" is ${L} but the file has no tensor "${last}" (the file holds fewer blocks)`,
      [last],
    );
  const width = (name: string, want: number, key: string, axis: 0 | 1) => {
    if (!file.has(name)) return;
    const ne = file.info(name).ne;
    if (ne[axis] !== want)
      throw new WeightsError(
        `tensor "${name}" has ne [${ne.join(", ")}]: ne[${axis}] = ${ne[axis]} does not match ${key} = ${want}`,
        [name],
      );
  };
  const E = "n_embd" in c ? c.n_embd : c.hidden_size;
  width("token_embd.weight", E, `metadata "${arch}.embedding_length"`, 0);
  if ("head_dim" in c) {
    const [H, d] = [c.num_attention_heads, c.head_dim];
    if (!file.has("blk.0.attn_q.weight"))
      throw new WeightsError(`GGUF file has no tensor "blk.0.attn_q.weight"`, ["blk.0.attn_q.weight"]);
    width("blk.0.attn_q.weight", H * d, `head_count × head width (${H} × ${d})`, 1);
  }
}

/** Config fields → the GGUF metadata keys they come from (`<arch>.` is prefixed unless the key has a dot). */
const CONFIG_KEYS: Record<string, string> = {
  vocab_size: "tokenizer.ggml.tokens",
  hidden_size: "embedding_length",
  n_embd: "embedding_length",
  intermediate_size: "feed_forward_length",
  n_inner: "feed_forward_length",
  num_hidden_layers: "block_count",
  n_layer: "block_count",
  num_attention_heads: "attention.head_count",
  n_head: "attention.head_count",
  num_key_value_heads: "attention.head_count_kv",
  head_dim: "attention.key_length",
  max_position_embeddings: "context_length",
  n_positions: "context_length",
  rms_norm_eps: "attention.layer_norm_rms_epsilon",
  layer_norm_epsilon: "attention.layer_norm_epsilon",
  rope_theta: "rope.freq_base",
  rope_scaling: "rope.scaling.type",
  bos_token_id: "tokenizer.ggml.bos_token_id",
  eos_token_id: "tokenizer.ggml.eos_token_id",
};

/** Run a config parser on `ggufConfig`'s object; a `ConfigError` is re-addressed to the GGUF key. */
function inGgufTerms<T>(arch: GgufArchitecture, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const f = e instanceof ConfigError ? e.field?.split(/[.[]/)[0] : undefined;
    const key = f === undefined ? undefined : CONFIG_KEYS[f];
    if (key === undefined) throw e;
    const gguf = key.includes(".ggml.") ? key : `${arch}.${key}`;
    throw new ConfigError(`${e instanceof Error ? e.message.replace(/^config: /, "") : ""}`, gguf);
  }
}

/**
 * Llama 3 rope scaling as llama.cpp stores it: `rope_freqs.weight` holds one divisor per
 * frequency (d/2 values), θ_j = rope_theta^(−2j/d) / rope_freqs[j].
 */
function checkRopeFreqs(file: GgufFile, decoder: DecoderArch): void {
  const info = file.info("rope_freqs.weight");
  const half = decoder.headDim / 2;
  if (info.shape.length !== 1 || info.shape[0] !== half)
    throw new WeightsError(
      `tensor "rope_freqs.weight" has shape [${info.shape.join(", ")}], expected [${half}] (head_dim / 2)`,
      ["rope_freqs.weight"],
    );
  if (info.typeName !== "F32")
    throw new GgufError(`tensor "rope_freqs.weight" must be F32, got ${info.typeName}`, {
      tensor: "rope_freqs.weight",
    });
}

/**
 * Load a decoder and its tokenizer from one GGUF file (a path or `file:` URL in Node, an `http(s)`
 * URL, a `Blob` or the bytes), dequantizing the weights to f32.
 *
 * @example
 * ```ts
 * await init();
 * const model = await loadGgufModel("./SmolLM2-135M-Instruct-Q8_0.gguf");
 * console.log((await model.generateAll("Hello,", { maxNewTokens: 10 })).texts[0]);
 * ```
 */
export async function loadGgufModel(
  source: SafetensorsSource,
  opts: GgufLoadOptions = {},
): Promise<GPT2LMHeadModel | LlamaForCausalLM> {
  const file = await openGguf(source);
  try {
    const plan = ggufPlan(file, opts);
    let decoder = plan.decoder;
    if (plan.weights.mapping.aux.has("rope_freqs.weight")) {
      const div = (await file.get("rope_freqs.weight")).data;
      const inv = Float64Array.from(decoder.invFreq!, (x, j) => x / div[j]);
      if (!inv.every((x) => Number.isFinite(x) && x > 0))
        throw new WeightsError(`tensor "rope_freqs.weight" holds a value that is zero, negative or not finite`, [
          "rope_freqs.weight",
        ]);
      decoder = { ...decoder, invFreq: inv };
    }
    const tokenizer = opts.tokenizer === false ? undefined : ggufTokenizer(new GgufMeta(file.metadata));
    const model =
      plan.arch === "gpt2"
        ? await GPT2LMHeadModel.fromArch(plan.config as GPT2Config, decoder, plan.weights, opts)
        : await LlamaForCausalLM.fromArch(plan.config as LlamaConfig, decoder, plan.weights, opts);
    model.tokenizer = tokenizer;
    return model;
  } finally {
    await file.close();
  }
}

/** Whether a `fromPretrained` argument names a GGUF file rather than a folder. */
export function isGgufSource(source: unknown): boolean {
  if (typeof source === "string") return /\.gguf$/i.test(source);
  if (source instanceof URL) return /\.gguf$/i.test(source.pathname);
  return (typeof Blob !== "undefined" && source instanceof Blob) || source instanceof Uint8Array;
}
