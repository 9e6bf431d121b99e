/**
 * The checkpoints wasmformer trains itself, each a Hugging Face style folder under `checkpoints/`
 * (config.json, model.safetensors, tokenizer and preprocessor files, README.md as the model card).
 * This module only says where they are: pass the folder to the loader of the package that owns the
 * architecture (`ViTForImageClassification.fromPretrained`, `AutoModelForCausalLM.fromPretrained`, …).
 */

import { InputError } from "@wasmformer/core";

/** Every embedded model, by name (the folder name under `checkpoints/`). */
export const MODEL_NAMES = ["digits-vit", "brown-lm", "brown-word2vec", "dates-seq2seq", "digits-minigpt4"] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

function check(name: string): asserts name is ModelName {
  if (!(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new InputError(`unknown model "${name}"; embedded models: ${MODEL_NAMES.join(", ")}`);
  }
}

/** The folder of an embedded model as a URL (a file: URL in Node, the served URL in a browser bundle). */
export function modelUrl(name: ModelName): URL {
  check(name);
  return new URL(`../checkpoints/${name}/`, import.meta.url);
}

/** The folder of an embedded model as a file system path (Node only). */
export async function modelPath(name: ModelName): Promise<string> {
  const { fileURLToPath } = await import("node:url");
  return fileURLToPath(modelUrl(name));
}
