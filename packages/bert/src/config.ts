/**
 * BERT configuration: the Hugging Face `BertConfig` fields
 * (https://github.com/huggingface/transformers/blob/main/src/transformers/models/bert/configuration_bert.py),
 * read from a `config.json` object and checked. The structural sizes are required (a config.json
 * written by `save_pretrained` always has them); the rest have HF's defaults.
 */
import { ConfigError, type ConfigOf, field, readConfig } from "@wasmformer/core";
import type { ActivationName } from "@wasmformer/nn";

/** HF `hidden_act` names this package runs, and the nn activation each one is. */
const ACTIVATIONS = {
  gelu: "gelu",
  relu: "relu",
  gelu_new: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  silu: "silu",
  swish: "silu",
} as const satisfies Record<string, ActivationName>;

const BertConfigSchema = {
  vocab_size: field.int({ positive: true }),
  hidden_size: field.int({ positive: true }),
  num_hidden_layers: field.int({ positive: true }),
  num_attention_heads: field.int({ positive: true }),
  intermediate_size: field.int({ positive: true }),
  max_position_embeddings: field.int({ positive: true }),
  type_vocab_size: field.int({ positive: true, default: 2 }),
  hidden_act: field.enumOf(Object.keys(ACTIVATIONS) as (keyof typeof ACTIVATIONS)[], { default: "gelu" }),
  layer_norm_eps: field.number({ positive: true, default: 1e-12 }),
  position_embedding_type: field.enumOf(["absolute"] as const, {
    default: "absolute",
    doc: "relative_key / relative_key_query are not supported",
  }),
  pad_token_id: field.nullable(field.int({ nonNegative: true }), { default: 0 }),
  model_type: field.enumOf(["bert"] as const, { default: "bert" }),
  is_decoder: field.bool({
    default: false,
    check: (v) => v && "a decoder BERT (causal self-attention) is not supported",
  }),
  add_cross_attention: field.bool({
    default: false,
    check: (v) => v && "cross-attention layers are not supported",
  }),
};

export type BertConfig = ConfigOf<typeof BertConfigSchema>;

/**
 * Read and check a BERT `config.json` object (or an already parsed `BertConfig`).
 * @throws ConfigError naming the field at fault: missing, ill-typed, an unknown `hidden_act`, an
 *   unsupported `position_embedding_type`, or heads that do not divide `hidden_size`.
 */
export function parseBertConfig(raw: unknown): BertConfig {
  return readConfig(raw, BertConfigSchema, {
    name: "BERT config.json",
    rules: [
      (c) =>
        c.hidden_size % c.num_attention_heads !== 0 && {
          field: "num_attention_heads",
          message: `${c.num_attention_heads} heads do not divide hidden_size ${c.hidden_size}`,
        },
    ],
  });
}

/** The nn activation of a config's `hidden_act`. */
export function activationOf(cfg: BertConfig): ActivationName {
  const a = ACTIVATIONS[cfg.hidden_act];
  if (!a) throw new ConfigError(`unsupported activation ${JSON.stringify(cfg.hidden_act)}`, "hidden_act");
  return a;
}
