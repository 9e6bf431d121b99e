/**
 * Configuration of the vision-language model (FORMAT.md §6.13, model_type `"vit-qformer-gpt2"`):
 * a `ViTConfig` (`vision_config`), a Hugging Face `Blip2QFormerConfig` (`qformer_config`, keys
 * copied verbatim from transformers `models/blip_2/configuration_blip_2.py`), the language model's
 * config (`text_config`) and `num_query_tokens`, as in `Blip2Config`.
 *
 * `text_config.model_type` picks the language model, as in BLIP-2 / InstructBLIP configs: absent or
 * `"gpt2"` → a `GPT2Config`; `"llama"`, `"qwen2"`, `"mistral"` → a Llama-family config (the
 * checkpoint's `language_model.*` then holds `LlamaForCausalLM` names). The top-level `model_type`
 * `"vit-qformer-llama"` names the second kind; it must agree with `text_config.model_type`.
 *
 * Another `model_type` (LLaVA's, for one) is a `ConfigError`. Errors in a nested config are
 * reported with the nested path (`qformer_config.hidden_size`,
 * `vision_config.patch_size`, `text_config.n_head`).
 */
import { Act, ConfigError, divisibleBy, field, readConfig } from "@wasmformer/core";
import { causalLMType, type GPT2Config, type LlamaConfig, parseGPT2Config, parseLlamaConfig } from "@wasmformer/llm";
import { parseViTConfig, type ViTConfig } from "@wasmformer/vit";

/** The fields of HF `Blip2QFormerConfig` that the query branch reads. */
export interface QFormerConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  layer_norm_eps: number;
  /** Cross-attention to the image in layers i with i mod f = 0. */
  cross_attention_frequency: number;
  /** Width of the vision features (the ViT's hidden_size). */
  encoder_hidden_size: number;
  position_embedding_type: "absolute";
  use_qformer_text_input: boolean;
}

/** HF `ACT2FN` names the Q-Former accepts → fused activation codes of the core kernels. */
const QFORMER_ACTS: Record<string, number> = {
  gelu: Act.gelu,
  gelu_new: Act.geluTanh,
  gelu_pytorch_tanh: Act.geluTanh,
  relu: Act.relu,
  silu: Act.silu,
};

/** Kernel activation code of a Q-Former / projector `hidden_act`. */
export function qformerActCode(name: string, fieldName = "hidden_act"): number {
  const a = QFORMER_ACTS[name];
  if (a === undefined) {
    throw new ConfigError(
      `unsupported activation ${JSON.stringify(name)} (supported: ${Object.keys(QFORMER_ACTS).join(", ")})`,
      fieldName,
    );
  }
  return a;
}

/** `Blip2QFormerConfig` as a core config schema (defaults: HF's, i.e. BLIP-2 OPT-2.7b). */
export const QFormerConfigSchema = {
  hidden_size: field.int({ positive: true, default: 768 }),
  num_hidden_layers: field.int({ positive: true, default: 12 }),
  num_attention_heads: field.int({ positive: true, default: 12 }),
  intermediate_size: field.int({ positive: true, default: 3072 }),
  hidden_act: field.enumOf(Object.keys(QFORMER_ACTS), { default: "gelu" }),
  layer_norm_eps: field.number({ nonNegative: true, default: 1e-12 }),
  cross_attention_frequency: field.int({ positive: true, default: 2 }),
  encoder_hidden_size: field.int({ positive: true, default: 1408 }),
  position_embedding_type: field.enumOf(["absolute"] as const, {
    default: "absolute",
    doc: "relative_key(_query) would add distance terms to the query self-attention: not supported",
  }),
  use_qformer_text_input: field.bool({
    default: false,
    check: (v) => (v ? "true is not supported (the Q-Former runs on its learned queries only)" : undefined),
  }),
};

/** Read a `Blip2QFormerConfig` object; a `ConfigError` names the field at fault. */
export function parseQFormerConfig(raw: unknown): QFormerConfig {
  const c = readConfig(raw, QFormerConfigSchema, {
    name: "Q-Former config",
    rules: [divisibleBy("hidden_size", "num_attention_heads")],
  });
  return {
    hidden_size: c.hidden_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    intermediate_size: c.intermediate_size,
    hidden_act: c.hidden_act,
    layer_norm_eps: c.layer_norm_eps,
    cross_attention_frequency: c.cross_attention_frequency,
    encoder_hidden_size: c.encoder_hidden_size,
    position_embedding_type: c.position_embedding_type,
    use_qformer_text_input: c.use_qformer_text_input,
  };
}

/** MiniGPT-4's prompt (`prompt_template` with `<Img><ImageHere></Img>` in place of `{}`). */
export const MINIGPT4_TEMPLATE = "###Human: <Img><ImageHere></Img> {question} ###Assistant: ";

/** The whole model's configuration. */
export interface VLMConfig {
  num_query_tokens: number;
  /** Whether `num_query_tokens` was in the config (false: HF's default 32 is used). */
  num_query_tokens_given: boolean;
  vision_config: ViTConfig;
  qformer_config: QFormerConfig;
  text_config: GPT2Config | LlamaConfig;
  /** The language model family, from `text_config.model_type`. */
  text_kind: "gpt2" | "llama";
  /** The language model's width (GPT-2 `n_embd`, Llama `hidden_size`): the projection's output. */
  text_hidden_size: number;
  /** The raw `text_config` object (for the language model's loader, which keeps HF's unknown keys). */
  text_config_raw: Record<string, unknown>;
  /** The raw `vision_config` object, without labels (a backbone has no classifier). */
  vision_config_raw: Record<string, unknown>;
  /** Prompt template with `<ImageHere>` and `{question}` (from `image_prompt.template`, else MiniGPT-4's chat template). */
  template: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Re-throw a nested ConfigError with its path under `prefix`. */
function nested<T>(prefix: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const field = e.field ? `${prefix}.${e.field}` : prefix;
    const inner = e.field ? e.message.replace(`config: ${e.field}: `, "") : e.message.replace(/^config: /, "");
    throw new ConfigError(inner, field);
  }
}

/** The `model_type` this package loads (absent is taken as this one). */
export const VLM_MODEL_TYPE = "vit-qformer-gpt2";
/** The `model_type` of the same model with a Llama-family language model. */
export const VLM_LLAMA_MODEL_TYPE = "vit-qformer-llama";

/**
 * Reject configs of other model families before their fields are read as this one's: a LLaVA
 * config (`model_type` `"llava"`, `"llava_next"`, …) would otherwise be loaded as a Q-Former model
 * when it happens to carry a `qformer_config`. LLaVA checkpoints cannot be routed to
 * `LlavaProjector` here either: they pair a CLIP vision tower (`vision_tower.*`, read at
 * `vision_feature_layer`, by default the penultimate layer) with a Llama language model and expand
 * an `<image>` token, none of which `fromPretrained` implements.
 */
function checkModelType(t: unknown): void {
  if (t === undefined || t === VLM_MODEL_TYPE || t === VLM_LLAMA_MODEL_TYPE) return;
  const llava =
    typeof t === "string" && t.toLowerCase().startsWith("llava")
      ? "; LLaVA checkpoints (CLIP vision tower, multi_modal_projector, Llama) are not supported — to run a ViT + LlavaProjector + GPT-2 or Llama model, build it with new VisionLanguageModel({ vision, adapter: await LlavaProjector.fromWeights(…), languageModel })"
      : "";
  throw new ConfigError(
    `${JSON.stringify(t)} is not supported: this loader reads "${VLM_MODEL_TYPE}" and "${VLM_LLAMA_MODEL_TYPE}" checkpoints (ViT → Q-Former → GPT-2 or a Llama-family decoder)${llava}`,
    "model_type",
  );
}

/**
 * Read and check the vision-language `config.json` object.
 * @throws ConfigError naming the field at fault, including cross-checks (`qformer_config.encoder_hidden_size`
 *   must equal `vision_config.hidden_size`).
 */
export function parseVLMConfig(raw: unknown): VLMConfig {
  if (!isObject(raw)) throw new ConfigError("config must be a JSON object");
  checkModelType(raw.model_type);
  // absent → HF `Blip2Config`'s default (32); a checkpoint with another count then says so (see fromPretrained)
  const q = raw.num_query_tokens ?? 32;
  if (typeof q !== "number" || !Number.isInteger(q) || q < 1)
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(q)}`, "num_query_tokens");
  for (const k of ["vision_config", "qformer_config", "text_config"]) {
    if (raw[k] === undefined) throw new ConfigError("required field is missing; expected an object", k);
    if (!isObject(raw[k])) throw new ConfigError(`expected an object, got ${JSON.stringify(raw[k])}`, k);
  }
  const visionRaw = { ...(raw.vision_config as Record<string, unknown>) };
  delete visionRaw.id2label;
  delete visionRaw.label2id;
  delete visionRaw.num_labels;
  const vision = nested("vision_config", () => parseViTConfig(visionRaw));
  // HF `Blip2Config` sets `qformer_config.encoder_hidden_size` from the vision tower when it is absent
  const qRaw = raw.qformer_config as Record<string, unknown>;
  const qformer = nested("qformer_config", () =>
    parseQFormerConfig("encoder_hidden_size" in qRaw ? qRaw : { ...qRaw, encoder_hidden_size: vision.hidden_size }),
  );
  const textRaw = raw.text_config as Record<string, unknown>;
  // absent text_config.model_type: GPT-2 (the §6.13 cases); else HF's auto-class choice
  const kind = textRaw.model_type === undefined ? "gpt2" : nested("text_config", () => causalLMType(textRaw));
  const wanted = raw.model_type === VLM_LLAMA_MODEL_TYPE ? "llama" : raw.model_type === VLM_MODEL_TYPE ? "gpt2" : kind;
  if (kind !== wanted) {
    throw new ConfigError(
      `${JSON.stringify(textRaw.model_type ?? "gpt2")} contradicts model_type ${JSON.stringify(raw.model_type)} (which expects ${wanted === "llama" ? 'a Llama-family text_config ("llama", "qwen2", "mistral")' : 'a GPT-2 text_config ("gpt2")'})`,
      "text_config.model_type",
    );
  }
  const text: GPT2Config | LlamaConfig = nested("text_config", () =>
    kind === "gpt2" ? parseGPT2Config(textRaw) : parseLlamaConfig(textRaw),
  );
  if (qformer.encoder_hidden_size !== vision.hidden_size) {
    throw new ConfigError(
      `${qformer.encoder_hidden_size} does not match vision_config.hidden_size ${vision.hidden_size} (the width of the image features the Q-Former attends to)`,
      "qformer_config.encoder_hidden_size",
    );
  }
  let template = MINIGPT4_TEMPLATE;
  if (raw.image_prompt !== undefined) {
    if (!isObject(raw.image_prompt)) throw new ConfigError("expected an object", "image_prompt");
    const t = raw.image_prompt.template;
    if (t !== undefined) {
      if (typeof t !== "string" || t.split("<ImageHere>").length !== 2)
        throw new ConfigError(
          `expected a string with one "<ImageHere>", got ${JSON.stringify(t)}`,
          "image_prompt.template",
        );
      // the case files give the image part only; MiniGPT-4 wraps it in its chat roles
      template = t.startsWith("###") ? t : `###Human: ${t} ###Assistant: `;
    }
  }
  return {
    num_query_tokens: q,
    num_query_tokens_given: raw.num_query_tokens !== undefined,
    vision_config: vision,
    qformer_config: qformer,
    text_config: text,
    text_kind: kind,
    text_hidden_size: "n_embd" in text ? text.n_embd : text.hidden_size,
    text_config_raw: textRaw,
    vision_config_raw: visionRaw,
    template,
  };
}
