/**
 * Vision-language model in the worker (@wasmformer/vlm): load a ViT → Q-Former → GPT-2 folder
 * (config.json with model_type "vit-qformer-gpt2", model.safetensors, the GPT-2 tokenizer; images are
 * preprocessed with ViT's defaults at the vision tower's image size), encode an image once, and stream
 * answers to questions about it.
 */
import { ConfigError, InputError, openSafetensors } from "@wasmformer/core";
import { sniffFormat } from "@wasmformer/vit";
import { type ImageFeatures, VisionLanguageModel } from "@wasmformer/vlm";
import type { FolderSource, ProgressFn } from "./folder.js";
import { drainStream, RunSlot, readModelFolder } from "./generation.js";

export interface VlmInfo {
  queries: number;
  visionLayers: number;
  qformerLayers: number;
  textLayers: number;
  imageSize: [number, number];
  template: string;
  loadMs: number;
  readMs: number;
}

export interface AskRequest {
  question: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

export interface AskResult {
  answer: string;
  tokens: number;
  /** encoding the image (ViT + Q-Former + projection; 0 when cached) */
  imageMs: number;
  ms: number;
  tokensPerSecond: number;
  finishReason: string;
}

let model: VisionLanguageModel | undefined;
let features: { key: string; f: ImageFeatures } | undefined;
const slot = new RunSlot();

export async function loadVlm(src: FolderSource, onProgress: ProgressFn): Promise<VlmInfo> {
  const t0 = performance.now();
  model = undefined;
  features = undefined;
  const { files, config, tokenizer, readMs } = await readModelFolder(src, onProgress);
  const blob = files["model.safetensors"];
  onProgress({ stage: "copying the weights into the heaps", loaded: 0, total: blob.size });
  const file = await openSafetensors(blob);
  let m: VisionLanguageModel;
  try {
    m = await VisionLanguageModel.fromPretrained({ config, weights: file }, { tokenizer });
  } finally {
    await file.close();
  }
  onProgress({ stage: "built", loaded: blob.size, total: blob.size });
  model = m;
  const c = config as {
    num_query_tokens: number;
    vision_config: { num_hidden_layers: number; image_size: number };
    qformer_config: { num_hidden_layers: number };
    text_config: { n_layer: number };
  };
  const size = c.vision_config.image_size;
  return {
    queries: c.num_query_tokens,
    visionLayers: c.vision_config.num_hidden_layers,
    qformerLayers: c.qformer_config.num_hidden_layers,
    textLayers: c.text_config.n_layer,
    imageSize: [size, size],
    template: m.template,
    loadMs: performance.now() - t0,
    readMs,
  };
}

async function imageInput(image: Blob): Promise<Uint8Array | ImageBitmap> {
  const bytes = new Uint8Array(await image.arrayBuffer());
  if (sniffFormat(bytes)) return bytes;
  try {
    return await createImageBitmap(new Blob([bytes]), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new InputError("the image could not be decoded (not PNG or JPEG, and the browser cannot read it either)");
  }
}

/**
 * Answer a question about an image, streaming the visible answer through `onToken` (awaited).
 * `imageKey` names the picture (Blobs arrive as fresh copies): the same key reuses its features.
 */
export async function askVlm(
  image: Blob,
  imageKey: string,
  req: AskRequest,
  onToken: (text: string, tokensPerSecond: number) => Promise<void> | void,
): Promise<AskResult> {
  const m = model;
  if (!m) throw new ConfigError("no vision-language model is loaded: load a checkpoint folder first");
  if (!req.question.trim()) throw new InputError("ask a question");
  const ctl = slot.start();
  const t0 = performance.now();
  // the image is encoded once; asking again about the same picture reuses its features
  if (!features || features.key !== imageKey) {
    features = undefined;
    features = { key: imageKey, f: await m.encodeImage(await imageInput(image)) };
  }
  const imageMs = performance.now() - t0;
  const t1 = performance.now();
  const it = m.generate(features.f, req.question, {
    maxNewTokens: req.maxNewTokens,
    temperature: req.temperature,
    topK: req.topK,
    seed: req.seed,
    signal: ctl.signal,
  });
  try {
    // steps with no visible answer text are not sent
    const { tokens, text, finishReason } = await drainStream(
      it,
      (c) => c.answer,
      (piece, tps) => (piece ? onToken(piece, tps) : undefined),
      t1,
    );
    const ms = performance.now() - t0;
    const tokensPerSecond = (tokens * 1000) / (performance.now() - t1);
    return { answer: text, tokens, imageMs, ms, tokensPerSecond, finishReason };
  } finally {
    slot.end(ctl);
  }
}

export function stopVlm(): boolean {
  return slot.stop();
}
