/**
 * Reading Hugging Face / sentence-transformers folders (Node): `config.json`, `model.safetensors`
 * (read lazily, one tensor at a time), and the small JSON files beside them.
 *
 * `node:fs/promises` is imported dynamically with a non-literal specifier so that bundlers leave
 * this module alone; in browsers use `BertModel.fromWeights` with `openSafetensors(blob)`.
 */
import { ConfigError, openSafetensors, parseConfigJson, WeightsError } from "@wasmformer/core";
import { parseJson, SubwordTokenizer } from "@wasmformer/text";
import { type BertLoadOptions, BertModel } from "./bert-model.js";
import { type PoolingMode, parseModulesJson, parsePoolingConfig, SentenceEmbedder } from "./sentence.js";

const FS_PROMISES = "node:fs/promises";
const PATH = "node:path";

const fsp = async () => (await import(/* @vite-ignore */ FS_PROMISES)) as typeof import("node:fs/promises");
const pathMod = async () => (await import(/* @vite-ignore */ PATH)) as typeof import("node:path");

/** The text of `folder/name`, or undefined when there is no such file. */
export async function readOptional(folder: string, name: string): Promise<string | undefined> {
  const fs = await fsp();
  const path = await pathMod();
  try {
    return await fs.readFile(path.join(folder, name), "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    throw new ConfigError(`cannot read ${path.join(folder, name)}: ${(e as Error).message}`);
  }
}

/** Whether `folder/name` exists. */
export async function exists(folder: string, name: string): Promise<boolean> {
  const fs = await fsp();
  const path = await pathMod();
  return fs.access(path.join(folder, name)).then(
    () => true,
    () => false,
  );
}

/** `folder/name` parsed as a JSON object (ConfigError with line and column when malformed), or undefined. */
export async function readJsonOptional(folder: string, name: string): Promise<Record<string, unknown> | undefined> {
  const text = await readOptional(folder, name);
  return text === undefined ? undefined : parseConfigJson(text, { name });
}

/** `config.json` + `model.safetensors` of a folder as a `BertModel`. */
export async function loadBertFolder(folder: string, opts: BertLoadOptions = {}): Promise<BertModel> {
  const path = await pathMod();
  const config = await readJsonOptional(folder, "config.json");
  if (!config) throw new ConfigError(`no config.json in ${folder}`);
  const weightsPath = path.join(folder, "model.safetensors");
  if (!(await exists(folder, "model.safetensors"))) {
    const bin = await exists(folder, "pytorch_model.bin");
    throw new WeightsError(
      `no model.safetensors in ${folder}${bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : ""}`,
      ["model.safetensors"],
    );
  }
  const file = await openSafetensors(weightsPath);
  try {
    return await BertModel.fromWeights(config, file, opts);
  } finally {
    await file.close();
  }
}

/** The tokenizer of a model folder: `tokenizer.json`, else BERT's `vocab.txt` (`do_lower_case` of tokenizer_config.json). */
async function loadTokenizer(dir: string, tokCfg: Record<string, unknown>): Promise<SubwordTokenizer> {
  const json = await readOptional(dir, "tokenizer.json");
  if (json !== undefined) return SubwordTokenizer.fromTokenizerJson(json, "tokenizer.json");
  const vocab = await readOptional(dir, "vocab.txt");
  if (vocab !== undefined) return SubwordTokenizer.bert(vocab, { lowercase: tokCfg.do_lower_case !== false });
  throw new ConfigError(`no tokenizer.json (or vocab.txt) in ${dir}`);
}

/** A sentence-transformers folder as a `SentenceEmbedder` (see `SentenceEmbedder.fromPretrained`). */
export async function loadSentenceTransformers(folder: string, opts: BertLoadOptions = {}): Promise<SentenceEmbedder> {
  const path = await pathMod();
  const modules = await readOptional(folder, "modules.json");
  const st = modules
    ? parseModulesJson(parseJson(modules, "modules.json"))
    : { transformerPath: "", poolingPath: undefined, normalize: false };
  const modelDir = path.join(folder, st.transformerPath);
  const sbert = (await readJsonOptional(folder, "sentence_bert_config.json")) ?? {};
  const tokCfg = (await readJsonOptional(modelDir, "tokenizer_config.json")) ?? {};
  const tokenizer = await loadTokenizer(modelDir, tokCfg);
  const model = await loadBertFolder(modelDir, opts);
  try {
    let pooling: PoolingMode[] = ["mean"];
    if (st.poolingPath !== undefined) {
      const dir = path.join(folder, st.poolingPath);
      const cfg = await readJsonOptional(dir, "config.json");
      if (!cfg) throw new ConfigError(`no config.json in ${dir} (the Pooling module of modules.json)`);
      pooling = parsePoolingConfig(cfg, model.hiddenSize);
    }
    const limit = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined);
    const P = model.config.max_position_embeddings;
    return new SentenceEmbedder(model, tokenizer, {
      pooling,
      normalize: st.normalize,
      maxSeqLength: Math.min(limit(sbert.max_seq_length) ?? limit(tokCfg.model_max_length) ?? P, P),
      doLowerCase: sbert.do_lower_case === true,
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
}
