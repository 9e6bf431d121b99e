/**
 * `AutoModelForCausalLM`: the decoder class picked by the config's `model_type`, as Hugging Face's
 * auto classes do: `"gpt2"` → `GPT2LMHeadModel`; `"llama"`, `"qwen2"`, `"mistral"` →
 * `LlamaForCausalLM`. Any other `model_type` is a `ConfigError` naming it. A `.gguf` file picks
 * by `general.architecture` (gguf-model.ts).
 */
import { ConfigError, InputError, showValue } from "@wasmformer/core";
import { type GgufLoadOptions, isGgufSource, loadGgufModel } from "./gguf-model.js";
import { GPT2LMHeadModel, type GPT2Options, type WeightSource } from "./gpt2-model.js";
import { LLAMA_MODEL_TYPES } from "./llama.js";
import { LlamaForCausalLM } from "./llama-model.js";

/** Every model this package loads. */
export type AnyCausalLM = GPT2LMHeadModel | LlamaForCausalLM;

/** The `model_type`s `AutoModelForCausalLM` accepts. */
export const CAUSAL_LM_MODEL_TYPES: readonly string[] = ["gpt2", ...LLAMA_MODEL_TYPES];

/**
 * The architecture of a `config.json` object: its `model_type`; a config without one is GPT-2 when
 * it has GPT-2's own fields (`n_embd`, `n_layer`, `n_head`), as the original GPT-2 files have.
 */
export function causalLMType(config: unknown): "gpt2" | "llama" {
  if (config === null || typeof config !== "object" || Array.isArray(config))
    throw new ConfigError(`expected a JSON object, got ${showValue(config)}`);
  const c = config as Record<string, unknown>;
  const t = c.model_type;
  if (t === undefined && ("n_embd" in c || "n_layer" in c || "n_head" in c)) return "gpt2";
  if (typeof t !== "string" || !CAUSAL_LM_MODEL_TYPES.includes(t)) {
    throw new ConfigError(
      `${t === undefined ? "missing" : `unsupported model type ${showValue(t)}`}: expected one of ${CAUSAL_LM_MODEL_TYPES.map((x) => JSON.stringify(x)).join(", ")}`,
      "model_type",
    );
  }
  return t === "gpt2" ? "gpt2" : "llama";
}

export const AutoModelForCausalLM = {
  /** Build the model `config.model_type` names from a config object and checkpoint tensors. */
  async fromWeights(
    config: Record<string, unknown>,
    weights: WeightSource,
    opts: GPT2Options = {},
  ): Promise<AnyCausalLM> {
    return causalLMType(config) === "gpt2"
      ? GPT2LMHeadModel.fromWeights(config, weights, opts)
      : LlamaForCausalLM.fromWeights(config, weights, opts);
  },

  /**
   * Load a Hugging Face folder (Node) with the class its `config.json` names (see `loadPretrained`),
   * or one GGUF file: a path or URL ending in `.gguf`, a `Blob` or the file's bytes (see `loadGgufModel`).
   */
  async fromPretrained(folder: string | URL | Blob | Uint8Array, opts: GgufLoadOptions = {}): Promise<AnyCausalLM> {
    if (isGgufSource(folder)) return loadGgufModel(folder, opts);
    if (opts.contextLength !== undefined)
      throw new InputError(
        "contextLength is an option of GGUF files (a folder's config.json sets max_position_embeddings)",
      );
    if (typeof folder !== "string")
      throw new InputError(
        `fromPretrained: expected a folder path, or a GGUF file (a path or URL ending in .gguf, a Blob, bytes), got ${showValue(folder)}`,
      );
    const { loadFolder } = await import("./pretrained.js");
    return loadFolder(folder, opts, (config, file, o) => AutoModelForCausalLM.fromWeights(config, file, o));
  },
};
