/**
 * A GGUF v3 writer for tests, and converters that write our small Hugging Face checkpoints the way
 * llama.cpp's `convert_hf_to_gguf.py` does: GGUF tensor names, Llama's Q/K row permutation for
 * ggml's rope, GPT-2's Conv1D matrices transposed to [out, in], `<arch>.*` and `tokenizer.ggml.*`
 * metadata. Matrices are stored F32, F16, Q8_0 or Q4_0 (rows whose length is not a multiple of 32 fall
 * back to F16, as the converter does); 1-D tensors stay F32.
 * https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */
import { f32ToF16, quantizeQ4_0, Tensor } from "@wasmformer/core";

/** A metadata value with its GGUF type. */
export type GgufMetaValue =
  | { t: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "bool" | "u64" | "i64" | "f64"; v: number | boolean }
  | { t: "str"; v: string }
  | { t: "arr"; elem: "str"; v: readonly string[] }
  | { t: "arr"; elem: "f32" | "i32" | "u32"; v: ArrayLike<number> };

const TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  str: 8,
  arr: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};
const GGML = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type WriteType = keyof typeof GGML;

export interface GgufTensorIn {
  name: string;
  /** Row-major shape (ggml's ne is this reversed). */
  shape: readonly number[];
  data: Float32Array;
  type: WriteType;
  /** Stored bytes instead of encoding `data` (e.g. a deliberately wrong size); `type` still names the type. */
  raw?: Uint8Array;
  /** Stored ggml type id overriding `type` (e.g. an unknown one). */
  typeId?: number;
}

class Out {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  n = 0;
  private grow(k: number) {
    if (this.n + k <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u8(v: number) {
    this.grow(1);
    this.dv.setUint8(this.n++, v);
  }
  u32(v: number) {
    this.grow(4);
    this.dv.setUint32(this.n, v, true);
    this.n += 4;
  }
  i32(v: number) {
    this.grow(4);
    this.dv.setInt32(this.n, v, true);
    this.n += 4;
  }
  u64(v: number) {
    this.grow(8);
    this.dv.setBigUint64(this.n, BigInt.asUintN(64, BigInt(v)), true);
    this.n += 8;
  }
  f32(v: number) {
    this.grow(4);
    this.dv.setFloat32(this.n, v, true);
    this.n += 4;
  }
  f64(v: number) {
    this.grow(8);
    this.dv.setFloat64(this.n, v, true);
    this.n += 8;
  }
  bytes(b: Uint8Array) {
    this.grow(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  str(s: string) {
    const e = new TextEncoder().encode(s);
    this.u64(e.length);
    this.bytes(e);
  }
  pad(al: number) {
    while (this.n % al !== 0) this.u8(0);
  }
  result() {
    return this.buf.slice(0, this.n);
  }
}

function scalar(o: Out, t: string, v: number | boolean | string) {
  const x = Number(v);
  switch (t) {
    case "u8":
    case "i8":
    case "bool":
      return o.u8(x & 0xff);
    case "u16":
    case "i16":
      o.u8(x & 0xff);
      return o.u8((x >> 8) & 0xff);
    case "u32":
      return o.u32(x);
    case "i32":
      return o.i32(x);
    case "f32":
      return o.f32(x);
    case "u64":
    case "i64":
      return o.u64(x);
    case "f64":
      return o.f64(x);
    default:
      return o.str(String(v));
  }
}

/** ggml's `quantize_row_q8_0_ref`: per block of 32, d = max|x|/127, q = round(x/d), stored {f16 d, i8 q[32]}. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j] * id);
      dv.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v))); // roundf: half away from zero
    }
  }
  return out;
}

function encode(t: GgufTensorIn): Uint8Array {
  if (t.raw) return t.raw;
  if (t.type === "F32") return new Uint8Array(Float32Array.from(t.data).buffer);
  if (t.type === "F16") {
    const h = new Uint16Array(t.data.length);
    for (let i = 0; i < h.length; i++) h[i] = f32ToF16(t.data[i]);
    return new Uint8Array(h.buffer);
  }
  // Q4_0 with core's quantizer (ggml's quantize_row_q4_0_ref, tested in core)
  return t.type === "Q4_0" ? quantizeQ4_0(t.data) : quantizeQ8_0(t.data);
}

/** Write a GGUF v3 file: metadata in the given order (undefined values are left out), tensors at 32-byte aligned offsets. */
export function writeGguf(meta: Meta, tensors: readonly GgufTensorIn[]): Uint8Array {
  const parts = ggufParts(meta, tensors);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * The bytes of `writeGguf` as consecutive parts: the header (padded to the alignment), then each
 * tensor's data (padded), so that a large file can be written part by part without one big copy.
 */
export function ggufParts(meta: Meta, tensors: readonly GgufTensorIn[]): Uint8Array[] {
  const al = 32;
  const o = new Out();
  const entries = Object.entries(meta).filter((e): e is [string, GgufMetaValue] => e[1] !== undefined);
  o.u32(0x46554747);
  o.u32(3);
  o.u64(tensors.length);
  o.u64(entries.length);
  for (const [k, m] of entries) {
    o.str(k);
    o.u32(TYPE[m.t]);
    if (m.t !== "arr") scalar(o, m.t, m.v);
    else {
      o.u32(TYPE[m.elem]);
      o.u64(m.v.length);
      for (let i = 0; i < m.v.length; i++) scalar(o, m.elem, m.v[i]);
    }
  }
  const blobs = tensors.map(encode);
  let off = 0;
  tensors.forEach((t, i) => {
    o.str(t.name);
    o.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) o.u64(d);
    o.u32(t.typeId ?? GGML[t.type]);
    o.u64(off);
    off += Math.ceil(blobs[i].length / al) * al;
  });
  o.pad(al);
  const padded = (b: Uint8Array) => {
    const n = Math.ceil(b.length / al) * al;
    if (n === b.length) return b;
    const p = new Uint8Array(n);
    p.set(b);
    return p;
  };
  return [o.result(), ...blobs.map(padded)];
}

// ---------------------------------------------------------------------------------------------
// converters (convert_hf_to_gguf.py, in small)

/** llama.cpp's `LlamaModel.permute`: per head, rows (2, d/2) → (d/2, 2). */
export function permuteRows(x: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads;
  const half = d / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let i = 0; i < half; i++)
        out.set(
          x.subarray((h * d + j * half + i) * cols, (h * d + j * half + i + 1) * cols),
          (h * d + 2 * i + j) * cols,
        );
  return out;
}

/** Metadata to write; an undefined value leaves the key out (e.g. to override a converter's key away). */
export type Meta = Record<string, GgufMetaValue | undefined>;

/** A tokenizer's GGUF metadata: `tokenizer.ggml.*` and `tokenizer.chat_template`. */
export interface TokenizerMeta {
  model: "gpt2" | "llama";
  tokens: string[];
  /** per token: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
  types: number[];
  scores?: number[];
  merges?: string[];
  pre?: string;
  bos?: number;
  eos?: number;
  unk?: number;
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

export function tokenizerMetadata(t: TokenizerMeta): Meta {
  const m: Meta = {
    "tokenizer.ggml.model": { t: "str", v: t.model },
    ...(t.pre ? { "tokenizer.ggml.pre": { t: "str", v: t.pre } } : {}),
    "tokenizer.ggml.tokens": { t: "arr", elem: "str", v: t.tokens },
    ...(t.scores ? { "tokenizer.ggml.scores": { t: "arr", elem: "f32", v: t.scores } } : {}),
    "tokenizer.ggml.token_type": { t: "arr", elem: "i32", v: t.types },
    ...(t.merges ? { "tokenizer.ggml.merges": { t: "arr", elem: "str", v: t.merges } } : {}),
  };
  if (t.bos !== undefined) m["tokenizer.ggml.bos_token_id"] = { t: "u32", v: t.bos };
  if (t.eos !== undefined) m["tokenizer.ggml.eos_token_id"] = { t: "u32", v: t.eos };
  if (t.unk !== undefined) m["tokenizer.ggml.unknown_token_id"] = { t: "u32", v: t.unk };
  if (t.addBos !== undefined) m["tokenizer.ggml.add_bos_token"] = { t: "bool", v: t.addBos };
  if (t.addEos !== undefined) m["tokenizer.ggml.add_eos_token"] = { t: "bool", v: t.addEos };
  if (t.chatTemplate !== undefined) m["tokenizer.chat_template"] = { t: "str", v: t.chatTemplate };
  return m;
}

/** The `tokenizer.ggml.*` of a byte-level BPE `tokenizer.json` object (`_set_vocab_gpt2`). */
export function gpt2TokenizerMeta(json: Record<string, unknown>, pre = "gpt-2"): TokenizerMeta {
  const model = json.model as { vocab: Record<string, number>; merges: (string | [string, string])[] };
  const added = (json.added_tokens as { id: number; content: string; special: boolean }[] | undefined) ?? [];
  const n = Math.max(...Object.values(model.vocab), ...added.map((a) => a.id)) + 1;
  const tokens = new Array<string>(n).fill("");
  for (const [t, id] of Object.entries(model.vocab)) tokens[id] = t;
  const types = new Array<number>(n).fill(1);
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4;
  }
  return {
    model: "gpt2",
    pre,
    tokens,
    types,
    merges: model.merges.map((m) => (typeof m === "string" ? m : m.join(" "))),
  };
}

const u32 = (v: number): GgufMetaValue => ({ t: "u32", v });
const f32 = (v: number): GgufMetaValue => ({ t: "f32", v });

/** The stored type of a matrix: `type`, or F16 when its rows do not split into 32-value blocks. */
const matrixType = (type: WriteType, cols: number): WriteType =>
  (type === "Q8_0" || type === "Q4_0") && cols % 32 !== 0 ? "F16" : type;

function tensorOut(name: string, t: Tensor, type: WriteType, data = t.data as Float32Array): GgufTensorIn {
  const shape = t.shape;
  return { name, shape, data, type: shape.length === 2 ? matrixType(type, shape[1]) : "F32" };
}

/** The options of `llamaToGguf` / `llamaGguf`. */
export type LlamaGgufOptions = {
  type?: WriteType;
  tokenizer?: TokenizerMeta;
  arch?: "llama" | "qwen2";
  extraMeta?: Meta;
  /** more tensors, written last (e.g. Llama 3's `rope_freqs.weight`) */
  extraTensors?: GgufTensorIn[];
  /** false: leave Q/K unpermuted (a wrong file, for tests) */
  permute?: boolean;
};

/**
 * A Llama checkpoint (config.json object + HF tensors) as llama.cpp writes it, `type` for the
 * matrices: Q/K rows permuted (llama only; `arch: "qwen2"` keeps them), `output.weight` only when untied.
 */
export function llamaToGguf(
  config: Record<string, unknown>,
  tensors: Map<string, Tensor>,
  opts: LlamaGgufOptions = {},
): Uint8Array {
  const g = llamaGguf(config, tensors, opts);
  return writeGguf(g.meta, g.tensors);
}

/** What `llamaToGguf` writes, as metadata and tensors (e.g. for `ggufParts`). */
export function llamaGguf(
  config: Record<string, unknown>,
  tensors: Map<string, Tensor>,
  opts: LlamaGgufOptions = {},
): { meta: Meta; tensors: GgufTensorIn[] } {
  const a = opts.arch ?? "llama";
  const type = opts.type ?? "F32";
  const H = config.num_attention_heads as number;
  const KV = (config.num_key_value_heads as number) ?? H;
  const D = config.hidden_size as number;
  const headDim = (config.head_dim as number | undefined) ?? D / H;
  const meta: Meta = {
    "general.architecture": { t: "str", v: a },
    "general.name": { t: "str", v: "tiny" },
    [`${a}.block_count`]: u32(config.num_hidden_layers as number),
    [`${a}.context_length`]: u32(config.max_position_embeddings as number),
    [`${a}.embedding_length`]: u32(D),
    [`${a}.feed_forward_length`]: u32(config.intermediate_size as number),
    [`${a}.attention.head_count`]: u32(H),
    [`${a}.attention.head_count_kv`]: u32(KV),
    [`${a}.rope.freq_base`]: f32((config.rope_theta as number | undefined) ?? 10000),
    [`${a}.attention.layer_norm_rms_epsilon`]: f32((config.rms_norm_eps as number | undefined) ?? 1e-6),
    [`${a}.rope.dimension_count`]: u32(headDim),
    ...(config.head_dim !== undefined
      ? { [`${a}.attention.key_length`]: u32(headDim), [`${a}.attention.value_length`]: u32(headDim) }
      : {}),
    "general.file_type": u32(type === "F32" ? 0 : type === "F16" ? 1 : type === "Q4_0" ? 2 : 7),
    ...(opts.tokenizer ? tokenizerMetadata(opts.tokenizer) : {}),
    ...opts.extraMeta,
  };
  const out: GgufTensorIn[] = [];
  const put = (gguf: string, hf: string, heads?: number) => {
    const t = tensors.get(hf);
    if (!t) return;
    let data = t.data as Float32Array;
    if (heads !== undefined && a === "llama" && opts.permute !== false)
      data = permuteRows(data, t.shape[0], t.shape[1] ?? 1, heads);
    out.push(tensorOut(gguf, t, type, data));
  };
  put("token_embd.weight", "model.embed_tokens.weight");
  for (let i = 0; i < (config.num_hidden_layers as number); i++) {
    const [b, p] = [`blk.${i}.`, `model.layers.${i}.`];
    put(`${b}attn_norm.weight`, `${p}input_layernorm.weight`);
    for (const s of ["weight", "bias"]) {
      put(`${b}attn_q.${s}`, `${p}self_attn.q_proj.${s}`, H);
      put(`${b}attn_k.${s}`, `${p}self_attn.k_proj.${s}`, KV);
      put(`${b}attn_v.${s}`, `${p}self_attn.v_proj.${s}`);
      put(`${b}attn_output.${s}`, `${p}self_attn.o_proj.${s}`);
    }
    put(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`);
    for (const s of ["weight", "bias"]) {
      put(`${b}ffn_gate.${s}`, `${p}mlp.gate_proj.${s}`);
      put(`${b}ffn_up.${s}`, `${p}mlp.up_proj.${s}`);
      put(`${b}ffn_down.${s}`, `${p}mlp.down_proj.${s}`);
    }
  }
  put("output_norm.weight", "model.norm.weight");
  if (config.tie_word_embeddings !== true) put("output.weight", "lm_head.weight");
  return { meta, tensors: [...out, ...(opts.extraTensors ?? [])] };
}

/** A GPT-2 checkpoint (HF names with `transformer.`) as llama.cpp writes it: Conv1D matrices transposed. */
export function gpt2ToGguf(
  config: Record<string, unknown>,
  tensors: Map<string, Tensor>,
  opts: { type?: WriteType; tokenizer?: TokenizerMeta; extraMeta?: Meta } = {},
): Uint8Array {
  const type = opts.type ?? "F32";
  const E = config.n_embd as number;
  const meta: Meta = {
    "general.architecture": { t: "str", v: "gpt2" },
    "gpt2.block_count": u32(config.n_layer as number),
    "gpt2.context_length": u32(config.n_positions as number),
    "gpt2.embedding_length": u32(E),
    "gpt2.feed_forward_length": u32((config.n_inner as number | null | undefined) ?? 4 * E),
    "gpt2.attention.head_count": u32(config.n_head as number),
    "gpt2.attention.layer_norm_epsilon": f32((config.layer_norm_epsilon as number | undefined) ?? 1e-5),
    "general.file_type": u32(type === "F32" ? 0 : type === "F16" ? 1 : type === "Q4_0" ? 2 : 7),
    ...(opts.tokenizer ? tokenizerMetadata(opts.tokenizer) : {}),
    ...opts.extraMeta,
  };
  const out: GgufTensorIn[] = [];
  const put = (gguf: string, hf: string, transpose = false) => {
    const t = tensors.get(`transformer.${hf}`) ?? tensors.get(hf);
    if (!t) return;
    if (!transpose) return void out.push(tensorOut(gguf, t, type));
    const [r, c] = t.shape;
    const x = t.data as Float32Array;
    const y = new Float32Array(x.length);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) y[j * r + i] = x[i * c + j];
    out.push(tensorOut(gguf, new Tensor(y, [c, r], "f32"), type));
  };
  put("token_embd.weight", "wte.weight");
  put("position_embd.weight", "wpe.weight");
  for (let i = 0; i < (config.n_layer as number); i++) {
    const [b, p] = [`blk.${i}.`, `h.${i}.`];
    for (const s of ["weight", "bias"]) {
      const w = s === "weight";
      put(`${b}attn_norm.${s}`, `${p}ln_1.${s}`);
      put(`${b}attn_qkv.${s}`, `${p}attn.c_attn.${s}`, w);
      put(`${b}attn_output.${s}`, `${p}attn.c_proj.${s}`, w);
      put(`${b}ffn_norm.${s}`, `${p}ln_2.${s}`);
      put(`${b}ffn_up.${s}`, `${p}mlp.c_fc.${s}`, w);
      put(`${b}ffn_down.${s}`, `${p}mlp.c_proj.${s}`, w);
    }
  }
  put("output_norm.weight", "ln_f.weight");
  put("output_norm.bias", "ln_f.bias");
  if (config.tie_word_embeddings === false) put("output.weight", "lm_head.weight");
  return writeGguf(meta, out);
}
