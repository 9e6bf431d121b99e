/**
 * Loading a Hugging Face GPT-2 or Llama-family checkpoint from a folder (Node) or a model id
 * (`owner/name[@revision]`, downloaded and cached: see core's `openModelFiles`): `config.json`,
 * `model.safetensors` (read lazily, one tensor at a time, straight into the model's heap) and the
 * tokenizer (`tokenizer.json`, or `vocab.json` + `merges.txt`; optional).
 */
import {
  ConfigError,
  type HubOptions,
  type ModelFiles,
  openModelFiles,
  ParseError,
  WeightsError,
} from "@wasmformer/core";
import { SubwordTokenizer } from "@wasmformer/text";
import { type CausalLM, GPT2LMHeadModel, type GPT2Options, type WeightSource } from "./gpt2-model.js";
import { fromSubwordTokenizer, type Tokenizer } from "./tokenizer.js";

export interface PretrainedOptions extends GPT2Options, HubOptions {
  /** Load the tokenizer files when present (default true). */
  tokenizer?: boolean;
}

/** The files of a folder or model id (a `ModelFiles` is used as it is). */
const filesOf = (src: string | ModelFiles, opts: HubOptions): Promise<ModelFiles> =>
  typeof src === "string" ? openModelFiles(src, opts) : Promise.resolve(src);

/**
 * Read the tokenizer of a folder or model id (`tokenizer.json` + `tokenizer_config.json`, or
 * `vocab.json` + `merges.txt`), or undefined when it has none.
 */
export async function loadTokenizer(src: string | ModelFiles, opts: HubOptions = {}): Promise<Tokenizer | undefined> {
  const files = await filesOf(src, opts);
  const tj = await files.text("tokenizer.json");
  if (tj !== undefined) {
    // tokenizer_config.json brings add_bos_token / add_eos_token and the chat template
    const cfg = await files.text("tokenizer_config.json");
    return fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(tj, "tokenizer.json", cfg ?? null));
  }
  const vocab = await files.text("vocab.json");
  const merges = await files.text("merges.txt");
  if (vocab !== undefined && merges !== undefined) return fromSubwordTokenizer(SubwordTokenizer.gpt2(vocab, merges));
  if (vocab !== undefined || merges !== undefined) {
    throw new ParseError(
      `found ${vocab !== undefined ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json"}`,
      { file: files.location },
    );
  }
  return undefined;
}

/**
 * Load `GPT2LMHeadModel` (and its tokenizer) from a Hugging Face folder or model id.
 * @example
 * ```ts
 * await init();
 * const model = await loadPretrained("openai-community/gpt2", {
 *   onDownload: (p) => console.log(p.file, p.loaded, p.total), // first time only: then it is cached
 *   onProgress: (p) => console.log(p.loaded / p.total),
 * });
 * console.log((await model.generateAll("Hello,", { maxNewTokens: 10 })).texts[0]);
 * ```
 */
export async function loadPretrained(folder: string, opts: PretrainedOptions = {}): Promise<GPT2LMHeadModel> {
  return loadFolder(folder, opts, (config, file, o) => GPT2LMHeadModel.fromWeights(config, file, o));
}

/**
 * Load a model from a Hugging Face folder or model id with `build` (the class's `fromWeights`):
 * reads `config.json`, opens `model.safetensors` lazily and attaches the tokenizer when present.
 */
export async function loadFolder<M extends CausalLM<{ vocab_size: number }>>(
  folder: string | ModelFiles,
  opts: PretrainedOptions,
  build: (config: Record<string, unknown>, weights: WeightSource, opts: PretrainedOptions) => Promise<M>,
): Promise<M> {
  const files = await filesOf(folder, opts);
  const configText = await files.text("config.json");
  if (configText === undefined) throw new ConfigError(`cannot read ${files.where("config.json")}: no such file`);
  let config: unknown;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    throw new ConfigError(`config.json is not valid JSON: ${(e as Error).message}`);
  }
  const tokenizer = opts.tokenizer === false ? undefined : await loadTokenizer(files);
  const file = await files.safetensors("model.safetensors");
  if (!file) {
    const bin = await files.exists("pytorch_model.bin");
    throw new WeightsError(
      `no model.safetensors in ${files.location}${bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : ""}`,
      ["model.safetensors"],
    );
  }
  try {
    const model = await build(config as Record<string, unknown>, file, opts);
    model.tokenizer = tokenizer;
    return model;
  } finally {
    await file.close();
  }
}
