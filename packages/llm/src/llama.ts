/**
 * Llama-family configuration (Hugging Face `LlamaConfig`, and `Qwen2Config` / `MistralConfig` where
 * they describe the same computation) and the checkpoint names of `LlamaForCausalLM`
 * (transformers `src/transformers/models/llama/modeling_llama.py`; FORMAT.md 6.15):
 *
 * ```
 * h = embed_tokens[ids]
 * per layer:  h = h + o_proj(Attn(rope(q), rope(k), v))  on RMSNorm(h; input_layernorm)
 *             h = h + down_proj(silu(gate_proj(x)) ⊙ up_proj(x)),  x = RMSNorm(h; post_attention_layernorm)
 * logits = RMSNorm(h; norm) · lm_headᵀ            (lm_head tied to embed_tokens, or its own weight)
 * ```
 * Query head h reads key/value head ⌊h / (H/KV)⌋ (grouped-query attention; KV = 1 is multi-query).
 */
import { Act, ConfigError, field, readConfig, showValue, WeightsError } from "@wasmformer/core";
import type { BlockNames, DecoderArch, WeightSpec } from "./decoder-arch.js";
import { parseRopeScaling, type RopeScaling, ropeInvFreq } from "./rope.js";

/** `model_type`s read as a Llama decoder. */
export const LLAMA_MODEL_TYPES = ["llama", "qwen2", "mistral"] as const;
export type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];

export interface LlamaConfig {
  model_type: LlamaModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Per-head width (HF default: hidden_size / num_attention_heads). */
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** q/k/v (and, when stored, o_proj) biases; always on for Qwen2. */
  attention_bias: boolean;
  mlp_bias: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  /** A number or a list (Llama 3 lists several end tokens). */
  eos_token_id: number | number[] | null;
}

/** HF `ACT2FN` names the MLP gate may use → core activation codes. */
const HIDDEN_ACTS: Record<string, number> = {
  silu: Act.silu,
  swish: Act.silu,
  gelu: Act.gelu,
  gelu_new: Act.geluTanh,
  gelu_pytorch_tanh: Act.geluTanh,
  relu: Act.relu,
  tanh: Act.tanh,
  sigmoid: Act.sigmoid,
};

/** Defaults of `LlamaConfig()`, with the fields where `Qwen2Config()` / `MistralConfig()` differ. */
const DEFAULTS: Record<LlamaModelType, { vocab: number; inter: number; maxPos: number; kv: number | null }> = {
  llama: { vocab: 32000, inter: 11008, maxPos: 2048, kv: null },
  qwen2: { vocab: 151936, inter: 22016, maxPos: 32768, kv: 32 },
  mistral: { vocab: 32000, inter: 14336, maxPos: 4096 * 32, kv: 8 },
};

const tokenId = field.nullable(field.int({ nonNegative: true }), { default: null });

/**
 * Read a Llama / Qwen2 / Mistral `config.json` object. A `ConfigError` names the field at fault:
 * an unknown `model_type`, an unsupported `rope_scaling`, `num_key_value_heads` not dividing
 * `num_attention_heads`, an odd `head_dim`, a sliding window that would bind, ids outside the vocabulary.
 */
export function parseLlamaConfig(raw: unknown): LlamaConfig {
  const name = "Llama config.json";
  const typeField = field.enumOf(LLAMA_MODEL_TYPES, { default: "llama" });
  const t = readConfig(raw, { model_type: typeField }, { name }).model_type;
  const dflt = DEFAULTS[t];
  const c = readConfig(
    raw,
    {
      vocab_size: field.int({ positive: true, default: dflt.vocab }),
      hidden_size: field.int({ positive: true, default: 4096 }),
      intermediate_size: field.int({ positive: true, default: dflt.inter }),
      num_hidden_layers: field.int({ positive: true, default: 32 }),
      num_attention_heads: field.int({ positive: true, default: 32 }),
      num_key_value_heads: field.nullable(field.int({ positive: true }), { default: dflt.kv }),
      head_dim: field.nullable(field.int({ positive: true }), { default: null }),
      hidden_act: field.enumOf(Object.keys(HIDDEN_ACTS), { default: "silu" }),
      max_position_embeddings: field.int({ positive: true, default: dflt.maxPos }),
      rms_norm_eps: field.number({ nonNegative: true, default: 1e-6 }),
      rope_theta: field.number({ positive: true, default: 10000 }),
      rope_scaling: field.any({ default: null }),
      attention_bias: field.bool({ default: false }),
      mlp_bias: field.bool({ default: false }),
      tie_word_embeddings: field.bool({ default: false }),
      bos_token_id: tokenId,
      eos_token_id: field.any({ default: null }),
      use_sliding_window: field.bool({ default: false }),
      sliding_window: field.nullable(field.int({ positive: true }), { default: null }),
    },
    { name },
  );
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads ?? H;
  if (H % KV !== 0)
    throw new ConfigError(
      `${KV} does not divide num_attention_heads (${H}): every key/value head must serve the same number of query heads`,
      "num_key_value_heads",
    );
  let d = c.head_dim;
  if (d === null) {
    if (c.hidden_size % H !== 0)
      throw new ConfigError(
        `${c.hidden_size} is not divisible by num_attention_heads (${H}) and head_dim is not given`,
        "hidden_size",
      );
    d = c.hidden_size / H;
  }
  if (d % 2 !== 0)
    throw new ConfigError(`${d} is odd: rotary embeddings rotate pairs of features (j, j + head_dim/2)`, "head_dim");
  const rope_scaling = parseRopeScaling(c.rope_scaling);
  // the sliding window of Qwen2 (use_sliding_window) and Mistral (sliding_window) is not implemented:
  // accepted only where it never binds
  if (t === "qwen2" && c.use_sliding_window)
    throw new ConfigError(`model_type "qwen2" with sliding-window attention is not supported`, "use_sliding_window");
  if (t === "mistral" && c.sliding_window !== null && c.sliding_window < c.max_position_embeddings)
    throw new ConfigError(
      `model_type "mistral" with sliding_window ${c.sliding_window} < max_position_embeddings ${c.max_position_embeddings} is not supported (only null or a window that never binds)`,
      "model_type",
    );
  const eos = c.eos_token_id;
  const ids = eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  ids.forEach((id, i) => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0)
      throw new ConfigError(
        `expected a token id or a list of them, got ${showValue(eos)}`,
        Array.isArray(eos) ? `eos_token_id[${i}]` : "eos_token_id",
      );
  });
  for (const [f, list] of [
    ["bos_token_id", c.bos_token_id === null ? [] : [c.bos_token_id]],
    ["eos_token_id", ids],
  ] as const) {
    for (const id of list)
      if (id >= c.vocab_size) throw new ConfigError(`${id} is outside the vocabulary (vocab_size ${c.vocab_size})`, f);
  }
  return {
    model_type: t,
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: d,
    hidden_act: c.hidden_act,
    max_position_embeddings: c.max_position_embeddings,
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    rope_scaling,
    attention_bias: c.attention_bias || t === "qwen2",
    mlp_bias: c.mlp_bias,
    tie_word_embeddings: c.tie_word_embeddings,
    bos_token_id: c.bos_token_id,
    eos_token_id: eos as number | number[] | null,
  };
}

/** The `eos_token_id` of a config as a list. */
export const eosList = (eos: number | number[] | null): number[] =>
  eos === null ? [] : Array.isArray(eos) ? eos : [eos];

/** The rotary frequencies older `transformers` versions stored per layer (FORMAT.md §6.15: ignored). */
const ROTARY_BUFFER = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/**
 * The engine switches and tensor names of a Llama checkpoint. `has` tells which optional tensors
 * the checkpoint stores (o_proj biases); a missing `lm_head.weight` of an untied model is a
 * `WeightsError` here.
 */
export function llamaArch(c: LlamaConfig, has: (name: string) => boolean): DecoderArch {
  const D = c.hidden_size;
  const V = c.vocab_size;
  const I = c.intermediate_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  const d = c.head_dim;
  const specs: WeightSpec[] = [];
  const spec = (name: string, shape: number[], layout?: "linear") => {
    specs.push(layout ? { name, shape, layout } : { name, shape });
    return name;
  };
  const embed = spec("model.embed_tokens.weight", [V, D]);
  const blocks: BlockNames[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const ab = c.attention_bias;
    const mb = c.mlp_bias;
    const b: BlockNames = {
      ln1w: spec(`${p}input_layernorm.weight`, [D]),
      attnW: spec(`${p}self_attn.q_proj.weight`, [H * d, D], "linear"),
      kW: spec(`${p}self_attn.k_proj.weight`, [KV * d, D], "linear"),
      vW: spec(`${p}self_attn.v_proj.weight`, [KV * d, D], "linear"),
      attnProjW: spec(`${p}self_attn.o_proj.weight`, [D, H * d], "linear"),
      ln2w: spec(`${p}post_attention_layernorm.weight`, [D]),
      fcW: spec(`${p}mlp.gate_proj.weight`, [I, D], "linear"),
      upW: spec(`${p}mlp.up_proj.weight`, [I, D], "linear"),
      mlpProjW: spec(`${p}mlp.down_proj.weight`, [D, I], "linear"),
    };
    if (ab) {
      b.attnB = spec(`${p}self_attn.q_proj.bias`, [H * d]);
      b.kB = spec(`${p}self_attn.k_proj.bias`, [KV * d]);
      b.vB = spec(`${p}self_attn.v_proj.bias`, [KV * d]);
    }
    // HF Llama gives o_proj a bias with attention_bias, Qwen2 never: read it whenever it is stored
    if (has(`${p}self_attn.o_proj.bias`)) b.attnProjB = spec(`${p}self_attn.o_proj.bias`, [D]);
    if (mb) {
      b.fcB = spec(`${p}mlp.gate_proj.bias`, [I]);
      b.upB = spec(`${p}mlp.up_proj.bias`, [I]);
      b.mlpProjB = spec(`${p}mlp.down_proj.bias`, [D]);
    }
    blocks.push(b);
  }
  const normW = spec("model.norm.weight", [D]);
  const tied = c.tie_word_embeddings;
  if (!tied && !has("lm_head.weight"))
    throw new WeightsError(`missing tensor "lm_head.weight" (required because tie_word_embeddings is false)`, [
      "lm_head.weight",
    ]);
  const head = tied ? embed : spec("lm_head.weight", [V, D]);
  const invFreq = ropeInvFreq({
    headDim: d,
    theta: c.rope_theta,
    scaling: c.rope_scaling,
    maxPositions: c.max_position_embeddings,
  });
  return {
    modelType: c.model_type,
    positionsField: "max_position_embeddings",
    maxPositions: c.max_position_embeddings,
    vocab: V,
    dim: D,
    dimField: "hidden_size",
    layers: c.num_hidden_layers,
    heads: H,
    kvHeads: KV,
    headDim: d,
    inner: I,
    norm: "rmsnorm",
    eps: c.rms_norm_eps,
    invFreq,
    gated: true,
    act: HIDDEN_ACTS[c.hidden_act]!,
    attnScale: () => 1 / Math.sqrt(d),
    eosTokenIds: eosList(c.eos_token_id),
    specs,
    embed,
    head,
    tied,
    normW,
    blocks,
    // older transformers versions stored the rotary frequencies; a stored tied lm_head is a copy
    ignorable: (n) => ROTARY_BUFFER.test(n) || (tied && n === "lm_head.weight"),
    describe: `vocab_size ${V}, hidden_size ${D}, intermediate_size ${I}, num_attention_heads ${H}, num_key_value_heads ${KV}, head_dim ${d}`,
  };
}
