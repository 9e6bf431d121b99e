/**
 * Loading a Hugging Face GPT-2 or Llama-family folder (Node): `config.json`, `model.safetensors` (read lazily, one
 * tensor at a time, straight into the model's heap) and the tokenizer (`tokenizer.json`, or
 * `vocab.json` + `merges.txt`; optional).
 *
 * `node:fs/promises` is imported dynamically with a non-literal specifier so that bundlers leave
 * this module alone; in browsers use `GPT2LMHeadModel.fromWeights` with `openSafetensors(blob)`.
 */
import { ConfigError, openSafetensors, ParseError, WeightsError } from "@wasmformer/core";
import { SubwordTokenizer } from "@wasmformer/text";
import { type CausalLM, GPT2LMHeadModel, type GPT2Options, type WeightSource } from "./gpt2-model.js";
import { fromSubwordTokenizer, type Tokenizer } from "./tokenizer.js";

const FS_PROMISES = "node:fs/promises";
const PATH = "node:path";

export interface PretrainedOptions extends GPT2Options {
  /** Load the tokenizer files when present (default true). */
  tokenizer?: boolean;
}

/** Read the tokenizer of a folder, or undefined when it has none. */
export async function loadTokenizer(folder: string): Promise<Tokenizer | undefined> {
  const fs = (await import(/* @vite-ignore */ FS_PROMISES)) as typeof import("node:fs/promises");
  const path = (await import(/* @vite-ignore */ PATH)) as typeof import("node:path");
  const read = async (name: string) => {
    try {
      return await fs.readFile(path.join(folder, name), "utf8");
    } catch {
      return undefined;
    }
  };
  const tj = await read("tokenizer.json");
  if (tj !== undefined) {
    // tokenizer_config.json brings add_bos_token / add_eos_token and the chat template
    const cfg = await read("tokenizer_config.json");
    return fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(tj, "tokenizer.json", cfg ?? null));
  }
  const vocab = await read("vocab.json");
  const merges = await read("merges.txt");
  if (vocab !== undefined && merges !== undefined) return fromSubwordTokenizer(SubwordTokenizer.gpt2(vocab, merges));
  if (vocab !== undefined || merges !== undefined) {
    throw new ParseError(
      `found ${vocab !== undefined ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json"}`,
      { file: folder },
    );
  }
  return undefined;
}

/**
 * Load `GPT2LMHeadModel` (and its tokenizer) from a Hugging Face folder.
 * @example
 * ```ts
 * await init();
 * const model = await loadPretrained("./gpt2", { onProgress: (p) => console.log(p.loaded / p.total) });
 * console.log((await model.generateAll("Hello,", { maxNewTokens: 10 })).texts[0]);
 * ```
 */
export async function loadPretrained(folder: string, opts: PretrainedOptions = {}): Promise<GPT2LMHeadModel> {
  return loadFolder(folder, opts, (config, file, o) => GPT2LMHeadModel.fromWeights(config, file, o));
}

/**
 * Load a model from a Hugging Face folder with `build` (the class's `fromWeights`): reads
 * `config.json`, opens `model.safetensors` lazily and attaches the tokenizer when present.
 */
export async function loadFolder<M extends CausalLM<{ vocab_size: number }>>(
  folder: string,
  opts: PretrainedOptions,
  build: (config: Record<string, unknown>, weights: WeightSource, opts: PretrainedOptions) => Promise<M>,
): Promise<M> {
  const fs = (await import(/* @vite-ignore */ FS_PROMISES)) as typeof import("node:fs/promises");
  const path = (await import(/* @vite-ignore */ PATH)) as typeof import("node:path");
  let configText: string;
  try {
    configText = await fs.readFile(path.join(folder, "config.json"), "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${path.join(folder, "config.json")}: ${(e as Error).message}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    throw new ConfigError(`config.json is not valid JSON: ${(e as Error).message}`);
  }
  const weightsPath = path.join(folder, "model.safetensors");
  try {
    await fs.access(weightsPath);
  } catch {
    const bin = await fs.access(path.join(folder, "pytorch_model.bin")).then(
      () => true,
      () => false,
    );
    throw new WeightsError(
      `no model.safetensors in ${folder}${bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : ""}`,
      ["model.safetensors"],
    );
  }
  const tokenizer = opts.tokenizer === false ? undefined : await loadTokenizer(folder);
  const file = await openSafetensors(weightsPath);
  try {
    const model = await build(config as Record<string, unknown>, file, opts);
    model.tokenizer = tokenizer;
    return model;
  } finally {
    await file.close();
  }
}
