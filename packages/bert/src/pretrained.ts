/**
 * Reading Hugging Face / sentence-transformers folders (Node): `config.json`, `model.safetensors`
 * (read lazily, one tensor at a time), and the small JSON files beside them.
 *
 * `node:fs/promises` is imported dynamically with a non-literal specifier so that bundlers leave
 * this module alone; in browsers use `BertModel.fromWeights` with `openSafetensors(blob)`.
 */
import { ConfigError, openSafetensors, parseConfigJson, WeightsError } from "@wasmformer/core";
import { type BertLoadOptions, BertModel } from "./bert-model.js";

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
