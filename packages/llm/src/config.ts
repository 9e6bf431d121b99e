/**
 * GPT-2 configuration: the fields of Hugging Face `GPT2Config` that the computation reads, under
 * their `config.json` names (transformers `src/transformers/models/gpt2/configuration_gpt2.py`).
 * Missing fields take HF's defaults; present fields of the wrong type are a `ConfigError` naming them.
 */
import { Act, ConfigError } from "@wasmformer/core";

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
  eos_token_id: number | null;
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

function posInt(raw: Record<string, unknown>, name: keyof GPT2Config, fallback: number): number {
  const v = raw[name] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(v)}`, name);
  }
  return v;
}

function bool(raw: Record<string, unknown>, name: keyof GPT2Config, fallback: boolean): boolean {
  const v = raw[name] ?? fallback;
  if (typeof v !== "boolean") throw new ConfigError(`expected a boolean, got ${JSON.stringify(v)}`, name);
  return v;
}

function tokenId(raw: Record<string, unknown>, name: keyof GPT2Config, fallback: number | null): number | null {
  const v = name in raw ? raw[name] : fallback;
  if (v === null || v === undefined) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new ConfigError(`expected a non-negative integer or null, got ${JSON.stringify(v)}`, name);
  }
  return v;
}

/**
 * Read a GPT-2 `config.json` object. Checks types and consistency (`n_embd % n_head`, token ids
 * inside the vocabulary, a known activation).
 */
export function parseGPT2Config(raw: unknown): GPT2Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`expected a JSON object, got ${Array.isArray(raw) ? "an array" : JSON.stringify(raw)}`);
  }
  const r = raw as Record<string, unknown>;
  if (r.model_type !== undefined && r.model_type !== "gpt2") {
    throw new ConfigError(`expected "gpt2", got ${JSON.stringify(r.model_type)}`, "model_type");
  }
  const d = gpt2Defaults;
  // `n_ctx` is the older name of `n_positions`
  const nPosFallback = typeof r.n_ctx === "number" ? r.n_ctx : d.n_positions;
  const cfg: GPT2Config = {
    vocab_size: posInt(r, "vocab_size", d.vocab_size),
    n_positions: posInt(r, "n_positions", nPosFallback),
    n_embd: posInt(r, "n_embd", d.n_embd),
    n_layer: posInt(r, "n_layer", d.n_layer),
    n_head: posInt(r, "n_head", d.n_head),
    n_inner: r.n_inner === null || r.n_inner === undefined ? null : posInt(r, "n_inner", 0),
    activation_function: (r.activation_function ?? d.activation_function) as string,
    layer_norm_epsilon: (r.layer_norm_epsilon ?? d.layer_norm_epsilon) as number,
    scale_attn_weights: bool(r, "scale_attn_weights", d.scale_attn_weights),
    scale_attn_by_inverse_layer_idx: bool(r, "scale_attn_by_inverse_layer_idx", d.scale_attn_by_inverse_layer_idx),
    reorder_and_upcast_attn: bool(r, "reorder_and_upcast_attn", d.reorder_and_upcast_attn),
    tie_word_embeddings: bool(r, "tie_word_embeddings", d.tie_word_embeddings),
    bos_token_id: tokenId(r, "bos_token_id", d.bos_token_id),
    eos_token_id: tokenId(r, "eos_token_id", d.eos_token_id),
  };
  if (typeof cfg.activation_function !== "string") {
    throw new ConfigError(`expected a string, got ${JSON.stringify(cfg.activation_function)}`, "activation_function");
  }
  activationCode(cfg.activation_function);
  const eps = cfg.layer_norm_epsilon;
  if (typeof eps !== "number" || !Number.isFinite(eps) || eps < 0) {
    throw new ConfigError(`expected a non-negative number, got ${JSON.stringify(eps)}`, "layer_norm_epsilon");
  }
  if (cfg.n_embd % cfg.n_head !== 0) {
    throw new ConfigError(`n_embd ${cfg.n_embd} is not divisible by n_head ${cfg.n_head}`, "n_head");
  }
  for (const f of ["bos_token_id", "eos_token_id"] as const) {
    const id = cfg[f];
    // HF configs of resized vocabularies may keep the old ids; only an id outside the table is fatal
    if (id !== null && id >= cfg.vocab_size) {
      throw new ConfigError(`${id} is outside the vocabulary (vocab_size ${cfg.vocab_size})`, f);
    }
  }
  return cfg;
}

/** MLP width: `n_inner` or 4·n_embd. */
export const innerDim = (c: GPT2Config): number => c.n_inner ?? 4 * c.n_embd;
