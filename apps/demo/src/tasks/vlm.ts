/**
 * Vision-language model in the worker (@wasmformer/vlm): load a ViT → Q-Former → GPT-2 folder
 * (config.json with model_type "vit-qformer-gpt2", model.safetensors, the GPT-2 tokenizer; images are
 * preprocessed with ViT's defaults at the vision tower's image size), encode an image once, and stream
 * answers to questions about it.
 */
import { ConfigError, InputError, openSafetensors, parseSafetensors } from "@wasmformer/core";
import { type RawImage, sniffFormat } from "@wasmformer/vit";
import { type ImageFeatures, MiniGPT4, type MiniGPT4FolderConfig, VisionLanguageModel } from "@wasmformer/vlm";
import { MNIST_SIZE, mnistDigit } from "./digit.js";
import { type FolderSource, type Latest, type ProgressFn, readFolder, readJson } from "./folder.js";
import { drainStream, RunSlot, readModelFolder } from "./generation.js";
import { loadSlots } from "./slots.js";

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

export async function loadVlm(
  src: FolderSource,
  onProgress: ProgressFn,
  latest: Latest = loadSlots.vlm.begin(),
): Promise<VlmInfo> {
  const t0 = performance.now();
  model = undefined;
  features = undefined;
  const head = await readFolder(src, ["config.json"], [], onProgress);
  const raw = (await readJson(head["config.json"], "config.json")) as { model_type?: unknown };
  if (raw.model_type === "minigpt4")
    return loadMiniGpt4(src, raw as unknown as MiniGPT4FolderConfig, onProgress, t0, latest);
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
  model = latest(m);
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

/** `rel` (a folder path of a config) as a folder URL relative to the folder at `base`. */
function folderUrl(rel: string, base: string): string {
  const dir = new URL(base.endsWith("/") ? base : `${base}/`, self.location.href);
  return new URL(rel.endsWith("/") ? rel : `${rel}/`, dir).href;
}

/**
 * A MiniGPT-4 folder (vlm's `MiniGPT4.fromFolder` layout) by URL: its own `model.safetensors`
 * holds `query_tokens`, `qformer.*` and `llama_proj.*`; `config.json` names the ViT and language
 * model folders by path, fetched relative to it (the embedded digits-minigpt4 borrows digits-vit and
 * brown-lm).
 */
async function loadMiniGpt4(
  src: FolderSource,
  cfg: MiniGPT4FolderConfig,
  onProgress: ProgressFn,
  t0: number,
  latest: Latest,
): Promise<VlmInfo> {
  if (src.kind !== "url")
    throw new ConfigError(
      "a MiniGPT-4 folder names its vision and language model folders by path: load it by URL",
      "vision_model_path",
    );
  for (const k of ["vision_model_path", "language_model_path"] as const) {
    if (typeof cfg[k] !== "string" || !cfg[k])
      throw new ConfigError(`expected a folder path, got ${JSON.stringify(cfg[k])}`, k);
  }
  const [own, vision, llm] = await Promise.all([
    readFolder(src, ["model.safetensors"], [], onProgress),
    readFolder(
      { kind: "url", url: folderUrl(cfg.vision_model_path, src.url) },
      ["config.json", "model.safetensors"],
      ["preprocessor_config.json"],
      onProgress,
    ),
    readModelFolder({ kind: "url", url: folderUrl(cfg.language_model_path, src.url) }, onProgress),
  ]);
  const readMs = performance.now() - t0;
  const bytes = async (b: Blob) => new Uint8Array(await b.arrayBuffer());
  const ownFile = parseSafetensors(await bytes(own["model.safetensors"]));
  // the projection's part of the one file (the Q-Former reads only its own tensors from it)
  const isProj = (n: string) => n.startsWith("llama_proj.");
  const projection = {
    names: () => ownFile.names().filter(isProj),
    has: (n: string) => isProj(n) && ownFile.has(n),
    get: (n: string) => ownFile.get(n),
  };
  const visionConfig = (await readJson(vision["config.json"], "config.json")) as {
    num_hidden_layers: number;
    image_size: number;
  };
  const m = await MiniGPT4.fromPretrained(
    {
      vision: {
        config: visionConfig,
        weights: await bytes(vision["model.safetensors"]),
        preprocessor: vision["preprocessor_config.json"]
          ? await readJson(vision["preprocessor_config.json"], "preprocessor_config.json")
          : undefined,
      },
      qformer: {
        config: { qformer_config: cfg.qformer_config, num_query_tokens: cfg.num_query_tokens },
        weights: ownFile,
      },
      projection: { weights: projection },
      llm: { config: llm.config, weights: await bytes(llm.files["model.safetensors"]) },
    },
    {
      tokenizer: llm.tokenizer,
      ...(cfg.image_prompt?.template !== undefined ? { template: cfg.image_prompt.template } : {}),
      ...(cfg.image_prompt?.separator !== undefined ? { separator: cfg.image_prompt.separator } : {}),
    },
  );
  model = latest(m);
  const q = cfg.qformer_config as { num_hidden_layers?: number };
  const lm = llm.config as { n_layer?: number; num_hidden_layers?: number };
  return {
    queries: cfg.num_query_tokens ?? 0,
    visionLayers: visionConfig.num_hidden_layers,
    qformerLayers: q.num_hidden_layers ?? 0,
    textLayers: lm.n_layer ?? lm.num_hidden_layers ?? 0,
    imageSize: [visionConfig.image_size, visionConfig.image_size],
    template: m.template,
    loadMs: performance.now() - t0,
    readMs,
  };
}

/** A drawing: grey pixels `[height, width]`, 0 = background, 255 = ink. */
export interface DigitImage {
  gray: Uint8Array;
  width: number;
  height: number;
}

async function imageInput(image: Blob | DigitImage): Promise<Uint8Array | ImageBitmap | RawImage> {
  if (!(image instanceof Blob)) {
    // a drawn digit, made MNIST-like (centred 20 px digit in 28 × 28) for the model's processor
    return {
      data: mnistDigit(image.gray, image.width, image.height),
      width: MNIST_SIZE,
      height: MNIST_SIZE,
      channels: 1,
    };
  }
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
  image: Blob | DigitImage,
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
