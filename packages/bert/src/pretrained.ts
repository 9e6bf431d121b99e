/**
 * Reading Hugging Face / sentence-transformers checkpoints from a folder (Node) or a model id
 * (`owner/name[@revision]`, downloaded once and cached: see core's `openModelFiles`):
 * `config.json`, `model.safetensors` (read lazily, one tensor at a time), and the small JSON files
 * beside them.
 */
import {
  ConfigError,
  type HubOptions,
  type ModelFiles,
  openModelFiles,
  parseConfigJson,
  WeightsError,
} from "@wasmformer/core";
import { parseJson, SubwordTokenizer } from "@wasmformer/text";
import { type BertLoadOptions, BertModel } from "./bert-model.js";
import { type PoolingMode, parseModulesJson, parsePoolingConfig, SentenceEmbedder } from "./sentence.js";

/** `BertLoadOptions` and, for model ids, the hub options of core's `openModelFiles`. */
export interface BertPretrainedOptions extends BertLoadOptions, HubOptions {}

const filesOf = (src: string | ModelFiles, opts: HubOptions): Promise<ModelFiles> =>
  typeof src === "string" ? openModelFiles(src, opts) : Promise.resolve(src);

/** A JSON file of the model parsed as an object (ConfigError with line and column when malformed), or undefined. */
async function readJsonOptional(files: ModelFiles, name: string): Promise<Record<string, unknown> | undefined> {
  const text = await files.text(name);
  return text === undefined ? undefined : parseConfigJson(text, { name });
}

/** `config.json` + `model.safetensors` of a folder or model id as a `BertModel`. */
export async function loadBertFolder(
  folder: string | ModelFiles,
  opts: BertPretrainedOptions = {},
): Promise<BertModel> {
  const files = await filesOf(folder, opts);
  const config = await readJsonOptional(files, "config.json");
  if (!config) throw new ConfigError(`no config.json in ${files.location}`);
  const file = await files.safetensors("model.safetensors");
  if (!file) {
    const bin = await files.exists("pytorch_model.bin");
    throw new WeightsError(
      `no model.safetensors in ${files.location}${bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : ""}`,
      ["model.safetensors"],
    );
  }
  try {
    return await BertModel.fromWeights(config, file, opts);
  } finally {
    await file.close();
  }
}

/** The tokenizer of a model: `tokenizer.json`, else BERT's `vocab.txt` (`do_lower_case` of tokenizer_config.json). */
async function loadTokenizer(files: ModelFiles, tokCfg: Record<string, unknown>): Promise<SubwordTokenizer> {
  const json = await files.text("tokenizer.json");
  if (json !== undefined) return SubwordTokenizer.fromTokenizerJson(json, "tokenizer.json");
  const vocab = await files.text("vocab.txt");
  if (vocab !== undefined) return SubwordTokenizer.bert(vocab, { lowercase: tokCfg.do_lower_case !== false });
  throw new ConfigError(`no tokenizer.json (or vocab.txt) in ${files.location}`);
}

/** A sentence-transformers folder or model id as a `SentenceEmbedder` (see `SentenceEmbedder.fromPretrained`). */
export async function loadSentenceTransformers(
  folder: string | ModelFiles,
  opts: BertPretrainedOptions = {},
): Promise<SentenceEmbedder> {
  const files = await filesOf(folder, opts);
  const modules = await files.text("modules.json");
  const st = modules
    ? parseModulesJson(parseJson(modules, "modules.json"))
    : { transformerPath: "", poolingPath: undefined, normalize: false };
  const modelFiles = files.sub(st.transformerPath);
  const sbert = (await readJsonOptional(files, "sentence_bert_config.json")) ?? {};
  const tokCfg = (await readJsonOptional(modelFiles, "tokenizer_config.json")) ?? {};
  const tokenizer = await loadTokenizer(modelFiles, tokCfg);
  const model = await loadBertFolder(modelFiles, opts);
  try {
    let pooling: PoolingMode[] = ["mean"];
    if (st.poolingPath !== undefined) {
      const dir = files.sub(st.poolingPath);
      const cfg = await readJsonOptional(dir, "config.json");
      if (!cfg) throw new ConfigError(`no config.json in ${dir.location} (the Pooling module of modules.json)`);
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
