/**
 * GPT-2 configuration: the fields of Hugging Face `GPT2Config` that the computation reads, under
 * their `config.json` names (transformers `src/transformers/models/gpt2/configuration_gpt2.py`).
 * Missing fields take HF's defaults; present fields of the wrong type are a `ConfigError` naming them
 * (read with core's `readConfig`).
 */
import { Act, ConfigError, divisibleBy, type Field, field, readConfig } from "@wasmformer/core";

export interface GPT2Config {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null → 4·n_embd. */
  n_inner: number | null;
  activation_function: string;
  layer_norm_epsilon: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  /** One id or several (HF allows a list: generation stops at any of them). */
  eos_token_id: number | number[] | null;
}

/** `GPT2Config()` defaults (GPT-2 small). */
export const gpt2Defaults: Readonly<GPT2Config> = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: null,
  activation_function: "gelu_new",
  layer_norm_epsilon: 1e-5,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  reorder_and_upcast_attn: false,
  tie_word_embeddings: true,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

/** HF `ACT2FN` names → fused activation codes of the core kernels. */
const ACTIVATIONS: Record<string, number> = {
  gelu_new: Act.geluTanh,
  gelu_pytorch_tanh: Act.geluTanh,
  gelu_fast: Act.geluTanh,
  gelu: Act.gelu,
  relu: Act.relu,
  silu: Act.silu,
  swish: Act.silu,
  tanh: Act.tanh,
  sigmoid: Act.sigmoid,
};

/** The kernel activation code for `config.activation_function`. */
export function activationCode(name: string): number {
  const a = ACTIVATIONS[name];
  if (a === undefined) {
    throw new ConfigError(
      `unsupported activation ${JSON.stringify(name)} (supported: ${Object.keys(ACTIVATIONS).join(", ")})`,
      "activation_function",
    );
  }
  return a;
}

/** A token id, or a non-empty list of them (HF `eos_token_id` may be either). */
function idOrIds(): Field<number | number[]> {
  const one = field.int({ nonNegative: true });
  const list = field.arrayOf(field.int({ nonNegative: true }), { minLength: 1 });
  return {
    ...one,
    expected: `${one.expected} or ${list.expected}`,
    read: (v, path, ctx) => (Array.isArray(v) ? list.read(v, path, ctx) : one.read(v, path, ctx)),
  };
}

/** The end-of-sequence ids of a config (`eos_token_id` as a list; empty when null). */
export function eosTokenIds(c: { eos_token_id: number | number[] | null }): number[] {
  const e = c.eos_token_id;
  return e === null ? [] : typeof e === "number" ? [e] : [...e];
}

/** `GPT2Config` as a core config schema (HF `attribute_map`: `n_ctx` is accepted for `n_positions`). */
export const GPT2ConfigSchema = {
  vocab_size: field.int({ positive: true, default: gpt2Defaults.vocab_size }),
  n_positions: field.int({ positive: true, default: gpt2Defaults.n_positions, aliases: ["n_ctx"] }),
  n_embd: field.int({ positive: true, default: gpt2Defaults.n_embd, aliases: ["hidden_size"] }),
  n_layer: field.int({ positive: true, default: gpt2Defaults.n_layer, aliases: ["num_hidden_layers"] }),
  n_head: field.int({ positive: true, default: gpt2Defaults.n_head, aliases: ["num_attention_heads"] }),
  n_inner: field.nullable(field.int({ positive: true }), { default: null }),
  activation_function: field.enumOf(Object.keys(ACTIVATIONS), { default: gpt2Defaults.activation_function }),
  layer_norm_epsilon: field.number({ nonNegative: true, default: gpt2Defaults.layer_norm_epsilon }),
  scale_attn_weights: field.bool({ default: true }),
  scale_attn_by_inverse_layer_idx: field.bool({ default: false }),
  reorder_and_upcast_attn: field.bool({ default: false }),
  tie_word_embeddings: field.bool({ default: true }),
  bos_token_id: field.nullable(field.int({ nonNegative: true }), { default: gpt2Defaults.bos_token_id }),
  eos_token_id: field.nullable(idOrIds(), { default: gpt2Defaults.eos_token_id }),
  model_type: field.optional(field.enumOf(["gpt2"])),
};

type Ids = { vocab_size: number; bos_token_id: number | null; eos_token_id: number | number[] | null };
/** Rule: the token ids of the config lie inside the vocabulary (HF configs of resized vocabularies may keep stale ids; only an id outside the table is fatal). */
const idInVocab = (f: "bos_token_id" | "eos_token_id") => (c: Ids) => {
  const id = c[f];
  const bad = (id === null ? [] : typeof id === "number" ? [id] : id).find((x) => x >= c.vocab_size);
  return bad !== undefined
    ? { field: f, message: `${bad} is outside the vocabulary (vocab_size ${c.vocab_size})` }
    : undefined;
};

/**
 * Read a GPT-2 `config.json` object (core `readConfig`): types, defaults, and consistency
 * (`n_embd % n_head`, token ids inside the vocabulary). A `ConfigError` names the field at fault.
 */
export function parseGPT2Config(raw: unknown): GPT2Config {
  const c = readConfig(raw, GPT2ConfigSchema, {
    name: "GPT-2 config.json",
    rules: [divisibleBy("n_embd", "n_head"), idInVocab("bos_token_id"), idInVocab("eos_token_id")],
  });
  return {
    vocab_size: c.vocab_size,
    n_positions: c.n_positions,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_inner: c.n_inner,
    activation_function: c.activation_function,
    layer_norm_epsilon: c.layer_norm_epsilon,
    scale_attn_weights: c.scale_attn_weights,
    scale_attn_by_inverse_layer_idx: c.scale_attn_by_inverse_layer_idx,
    reorder_and_upcast_attn: c.reorder_and_upcast_attn,
    tie_word_embeddings: c.tie_word_embeddings,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id,
  };
}

/** MLP width: `n_inner` or 4·n_embd. */
export const innerDim = (c: GPT2Config): number => c.n_inner ?? 4 * c.n_embd;
