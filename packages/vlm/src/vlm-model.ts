/**
 * A vision-language model in the BLIP-2 / MiniGPT-4 style (Zhu et al. 2023,
 * https://arxiv.org/abs/2304.10592): a frozen ViT reads the image, a Q-Former's learned queries
 * summarise it, `language_projection` maps them into the language model's embedding space, and the
 * language model (GPT-2, or a Llama-family decoder) answers a question about the image (FORMAT.md
 * §6.13, model_type `"vit-qformer-gpt2"`; `"vit-qformer-llama"` with a Llama `text_config`):
 *
 * ```
 * img           = ViTModel(pixel_values).last_hidden_state                     (B, T_img, Dv)
 * q             = Blip2QFormerModel(query_tokens, img).last_hidden_state        (B, Q, Dq)
 * projected     = language_projection(q)                                       (B, Q, Et)
 * inputs_embeds = concat(wte[prefix_ids], projected, wte[suffix_ids])          (B, P+Q+S, Et)
 * logits        = LM(inputs_embeds);  generation continues with the KV cache
 * ```
 *
 * The parts are independent objects, each with its own runtime heap: `vision` (@wasmformer/vit
 * `ViTModel`), `adapter` (`QFormerAdapter`, or a `LlavaProjector`), `languageModel`
 * (@wasmformer/llm `GPT2LMHeadModel` or `LlamaForCausalLM`: one decoder engine). Image features
 * are computed once per image (keyed on the pixels' content) and reused for every question about it. Generations on one model may run at
 * the same time: each runs in a KV context of its own (see @wasmformer/llm `createContext`).
 */
import {
  ConfigError,
  checkTensors,
  createRuntime,
  DisposedError,
  InputError,
  parseSafetensors,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import {
  type AnyCausalLM,
  AutoModelForCausalLM,
  checkGenerateOptions,
  type GenerateOptions,
  type GenerationChunk,
  type GenerationResult,
  loadTokenizer,
  stopIdSet,
  type Tokenizer,
} from "@wasmformer/llm";
import type { BatchResult, Trainable, TrainParam } from "@wasmformer/nn";
import { type ImageInput, openCheckpointFolder, ViTModel } from "@wasmformer/vit";
import { type ImageAdapter, type ImageProjection, idRows, QFormerAdapter, spliceImageEmbeds } from "./adapter.js";
import { parseVLMConfig, type VLMConfig } from "./config.js";
import { TensorContentCache } from "./image-cache.js";
import { LinearProjector } from "./projector.js";
import { answerText, type ImagePromptIds, TURN_SEPARATOR, tokenizeImagePrompt } from "./prompt.js";
import { Blip2QFormerModel, checkQFormerWeights } from "./qformer.js";
import { checkExample, layOut, lmBatch, padRows, type VLMExample, type VLMTrainOptions } from "./train.js";
import { prefixView, type WeightSource } from "./weights.js";

/** A vision tower: pixels → features (`ViTModel` is one). */
export interface VisionEncoder {
  forward(pixelValues: Tensor): { lastHiddenState: Tensor<"f32"> };
  /** Images → preprocessed `pixel_values` (optional: without it only tensors are accepted). */
  pixelValues?(images: ImageInput | readonly ImageInput[]): Promise<Tensor<"f32">>;
  /** Free its memory (called by `VisionLanguageModel.dispose`, when present). */
  dispose?(): void;
}

/** Everything computed from a batch of images, reusable across questions. */
export interface ImageFeatures extends ImageProjection {
  /** `[B, T_img, Dv]`: the vision tower's `last_hidden_state`. */
  visionLastHiddenState: Tensor<"f32">;
  /** Number of images. */
  batchSize: number;
}

/** An image argument: pixel values, image(s) to preprocess, or features from `encodeImage`. */
export type ImageArg = Tensor | ImageInput | readonly ImageInput[] | ImageFeatures;

/** A question: text (needs the tokenizer; one per image or one for all) or the ids around the image slot. */
export type QuestionArg =
  | string
  | readonly string[]
  | { prefixIds: ArrayLike<number>[] | Tensor; suffixIds: ArrayLike<number>[] | Tensor };

/** A generated token, with the part of the answer it makes visible. */
export interface VLMGenerationChunk extends GenerationChunk {
  /**
   * New answer text: `text`, minus the turn separator (`###`) and what follows it; text that may be
   * the start of the separator is held back until it is known not to be.
   */
  answer: string;
}

export interface VLMGenerationResult extends GenerationResult {
  /** Per row: the text up to the turn separator, trimmed. */
  answers: string[];
}

export interface VLMGenerateOptions extends GenerateOptions {
  /** Use (and fill) the per-image feature cache (default true). */
  cache?: boolean;
}

export interface VLMLoadOptions {
  /** Largest batch of prompts for generation (sizes the language model's KV cache). Default 1. */
  maxBatch?: number;
  /** Makes each part's runtime (default core's `createRuntime()`: wasm after `await init()`). */
  runtime?: () => Runtime;
  /** Tokenizer for text questions and answers. */
  tokenizer?: Tokenizer;
  /**
   * Checkpoint tensors the config does not use are a `WeightsError` (default true, as PyTorch's
   * strict `load_state_dict`). Always accepted: the extras FORMAT.md lists (the Q-Former's
   * text-branch `intermediate.*`/`output.*`, GPT-2's legacy `attn.bias`/`attn.masked_bias` and a
   * stored tied `lm_head.weight`, a ViT `embeddings.mask_token`). false: ignore every unused tensor.
   */
  strict?: boolean;
}

/** A `vit-qformer-gpt2` checkpoint: the parsed `config.json` and `model.safetensors` (bytes or tensors). */
export interface VLMPretrainedSource {
  config: unknown;
  weights: Uint8Array | ArrayBuffer | WeightSource;
  /**
   * Parsed `preprocessor_config.json` (optional): the vision tower's image preprocessing (size,
   * resample, mean/std). Absent: HF ViT defaults at the vision config's `image_size`.
   */
  preprocessor?: unknown;
}

const isFeatures = (x: unknown): x is ImageFeatures =>
  typeof x === "object" && x !== null && "visionLastHiddenState" in x && "imageEmbeds" in x;

/** Prefixes of the checkpoint's parts (FORMAT.md §6.13 / HF `Blip2ForConditionalGeneration`). */
const PARTS = ["vision_model.", "qformer.", "language_projection.", "language_model."];

/** The `cache` option (default true), checked. */
function cacheOption(o: { cache?: unknown }): boolean {
  if (o === null || typeof o !== "object") throw new InputError(`options must be an object, got ${String(o)}`);
  if (o.cache !== undefined && typeof o.cache !== "boolean")
    throw new InputError(`cache must be a boolean, got ${JSON.stringify(o.cache)}`);
  return o.cache ?? true;
}

/** Images whose features the cache keeps (each entry also keeps a copy of its pixels). */
const IMAGE_CACHE_SIZE = 8;

/** Images whose (frozen) vision features training keeps. */
const VISION_TRAIN_CACHE_SIZE = 64;

/** Re-throw a component's WeightsError with its names under the checkpoint prefix. */
async function scoped<T>(prefix: string, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof WeightsError) {
      throw new WeightsError(
        `${prefix}* (${what}): ${e.message}`,
        e.names.map((n) => prefix + n),
      );
    }
    throw e;
  }
}

/**
 * Vision encoder + adapter + language model (GPT-2 or Llama-family), with MiniGPT-4 prompts.
 * @example
 * ```ts
 * await init();
 * const vlm = await VisionLanguageModel.fromFolder("./minigpt4-tiny");
 * const image = await vlm.encodeImage(await loadImage("cat.png"));     // computed once
 * console.log(await vlm.ask(image, "What is in the picture?"));
 * for await (const c of vlm.generate(image, "What colour is it?")) process.stdout.write(c.answer);
 * ```
 */
export class VisionLanguageModel implements Trainable<VLMExample> {
  readonly vision: VisionEncoder;
  readonly adapter: ImageAdapter;
  readonly languageModel: AnyCausalLM;
  /**
   * How a text prompt starts (`promptIds`). undefined (default): the part before the image is
   * tokenized with the tokenizer's special tokens, as MiniGPT-4 does (a Llama tokenizer's BOS,
   * nothing for GPT-2); a number: that id first, then the text without special tokens; null: none.
   */
  bosTokenId: number | null | undefined;
  /** Prompt template with `<ImageHere>` and `{question}` (MiniGPT-4's by default). */
  template: string;
  /**
   * Where an answer ends (MiniGPT-4's turn separator `###` by default): with a tokenizer,
   * generation stops at it and `answers` / `answer` chunks never show it or what follows.
   */
  readonly separator: string;
  /** The parsed config, when loaded from a checkpoint. */
  readonly config: VLMConfig | undefined;
  /** How often each part ran (the feature cache saves vision and adapter runs). */
  readonly stats = { visionRuns: 0, adapterRuns: 0 };
  /** Features per pixel content (see image-cache.ts): the last IMAGE_CACHE_SIZE images. */
  private cache = new TensorContentCache<ImageFeatures>(IMAGE_CACHE_SIZE);
  /** Runtimes `fromPretrained` created (given back by `dispose`). */
  private ownedRuntimes: Runtime[] = [];
  private isDisposed = false;
  /** Training mode (train.ts): the adapter trains, the vision tower and the language model are frozen. */
  private trainingMode = false;
  private trainQFormer = false;
  /** Frozen vision features per pixel content, for training (the ViT never changes). */
  private visionCache = new TensorContentCache<Tensor<"f32">>(VISION_TRAIN_CACHE_SIZE);

  constructor(parts: {
    vision: VisionEncoder;
    adapter: ImageAdapter;
    languageModel: AnyCausalLM;
    tokenizer?: Tokenizer;
    template?: string;
    /** See `separator` (default `###`). */
    separator?: string;
    config?: VLMConfig;
    /** See `bosTokenId` (default: the tokenizer's special tokens). */
    bosTokenId?: number | null;
    /** Runtimes the model owns: `dispose()` gives them back to core's `releaseRuntime`. */
    ownedRuntimes?: Runtime[];
  }) {
    this.vision = parts.vision;
    this.adapter = parts.adapter;
    this.languageModel = parts.languageModel;
    const lm = parts.languageModel as AnyCausalLM | undefined;
    if (!lm || typeof lm.embedTokens !== "function" || !lm.arch)
      throw new InputError("languageModel must be a GPT2LMHeadModel or LlamaForCausalLM (@wasmformer/llm)");
    const E = lm.arch.dim;
    if (parts.adapter.outputDim !== E) {
      throw new ShapeError(
        `the adapter produces width ${parts.adapter.outputDim}, the language model (${lm.arch.modelType}) embeds with ${lm.arch.dimField} ${E}`,
      );
    }
    const bos = parts.bosTokenId;
    if (bos !== undefined && bos !== null && (!Number.isInteger(bos) || bos < 0 || bos >= lm.config.vocab_size))
      throw new InputError(`bosTokenId must be a token id in [0, ${lm.config.vocab_size}), got ${bos}`);
    this.bosTokenId = bos;
    this.ownedRuntimes = [...(parts.ownedRuntimes ?? [])];
    if (parts.tokenizer) this.languageModel.tokenizer = parts.tokenizer;
    this.template =
      parts.template ?? parts.config?.template ?? "###Human: <Img><ImageHere></Img> {question} ###Assistant: ";
    this.config = parts.config;
    const sep = parts.separator ?? TURN_SEPARATOR;
    if (typeof sep !== "string" || sep.length === 0)
      throw new InputError(`separator must be a non-empty string, got ${JSON.stringify(sep)}`);
    this.separator = sep;
  }

  /** The tokenizer (shared with the language model). */
  get tokenizer(): Tokenizer | undefined {
    return this.languageModel.tokenizer;
  }
  set tokenizer(t: Tokenizer | undefined) {
    this.languageModel.tokenizer = t;
  }

  /**
   * Build from a `vit-qformer-gpt2` checkpoint: `config` (the parsed config.json) and the weights
   * (`vision_model.*`, `query_tokens`, `qformer.*`, `language_projection.*`, `language_model.*`).
   * All names and shapes are checked before anything is copied; a `WeightsError` lists what is
   * missing, wrong-shaped or unexpected.
   */
  static async fromPretrained(src: VLMPretrainedSource, opts: VLMLoadOptions = {}): Promise<VisionLanguageModel> {
    const cfg = parseVLMConfig(src.config);
    const Et = cfg.text_hidden_size;
    const weights: WeightSource =
      src.weights instanceof Uint8Array || src.weights instanceof ArrayBuffer
        ? parseSafetensors(src.weights)
        : src.weights;
    const maxBatch = opts.maxBatch ?? 1;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`maxBatch must be a positive integer, got ${maxBatch}`);
    // runtimes made here are the model's own (dispose gives them back); a caller's factory keeps its own
    const owned: Runtime[] = [];
    const makeRt =
      opts.runtime ??
      (() => {
        const rt = createRuntime();
        owned.push(rt);
        return rt;
      });

    // ---- names of the Q-Former and the projection, and anything outside the four parts
    const Q = cfg.num_query_tokens;
    const strict = opts.strict ?? true;
    const faults = await checkQFormerWeights(weights, cfg.qformer_config, Q, { strict });
    await checkTensors(
      weights,
      [
        { name: "language_projection.weight", shape: [Et, cfg.qformer_config.hidden_size] },
        { name: "language_projection.bias", shape: [Et] },
      ],
      {
        owns: (n) =>
          n.startsWith("language_projection.") || (!PARTS.some((p) => n.startsWith(p)) && n !== "query_tokens"),
        faults,
        strict,
      },
    );
    if (!cfg.num_query_tokens_given && faults.wrong.includes("query_tokens")) {
      throw new ConfigError(
        `required field is missing: HF's default ${Q} contradicts the checkpoint (${faults.messages.find((m) => m.startsWith('"query_tokens"'))})`,
        "num_query_tokens",
      );
    }
    faults.throwIfAny(
      `vit-qformer-${cfg.text_kind} config (Q-Former hidden_size ${cfg.qformer_config.hidden_size}, ${cfg.qformer_config.num_hidden_layers} layers, cross_attention_frequency ${cfg.qformer_config.cross_attention_frequency}, ${Q} queries; language model width ${Et})`,
    );
    for (const p of ["vision_model.", "language_model."]) {
      if (!weights.names().some((n) => n.startsWith(p)))
        throw new WeightsError(`checkpoint has no "${p}*" tensors`, [p]);
    }

    // ---- the parts
    const vision = await scoped("vision_model.", "ViT", () =>
      ViTModel.fromPretrained(
        {
          config: cfg.vision_config_raw,
          weights: prefixView(weights, "vision_model.") as never,
          ...(src.preprocessor !== undefined ? { preprocessor: src.preprocessor } : {}),
        },
        { runtime: makeRt(), strict },
      ),
    );
    const qformer = await Blip2QFormerModel.fromWeights(cfg.qformer_config, Q, weights, { runtime: makeRt(), strict });
    const projection = await LinearProjector.fromWeights(weights, { runtime: qformer.runtime, strict });
    const lmSource = prefixView(weights, "language_model.");
    const languageModel = await scoped("language_model.", cfg.text_kind === "gpt2" ? "GPT-2" : "Llama", async () => {
      // strict: the engine accepts only each architecture's known extras (GPT-2's legacy buffers, a
      // stored tied lm_head, Llama's rotary inv_freq buffers) besides its weights
      const lmConfig = { model_type: "gpt2", ...cfg.text_config_raw };
      return AutoModelForCausalLM.fromWeights(lmConfig, lmSource, { maxBatch, runtime: makeRt(), strict });
    });
    const vlm = new VisionLanguageModel({
      vision,
      adapter: new QFormerAdapter(qformer, projection),
      languageModel,
      tokenizer: opts.tokenizer,
      config: cfg,
      ownedRuntimes: owned,
    });
    return vlm;
  }

  /**
   * Load from a folder (Node): `config.json`, `model.safetensors` (read tensor by tensor),
   * `preprocessor_config.json` and the tokenizer (`tokenizer.json`, or `vocab.json` +
   * `merges.txt`) when present.
   */
  static async fromFolder(dir: string, opts: VLMLoadOptions = {}): Promise<VisionLanguageModel> {
    const folder = await openCheckpointFolder(dir);
    try {
      const tokenizer = opts.tokenizer ?? (await loadTokenizer(dir));
      return await VisionLanguageModel.fromPretrained(folder, { ...opts, tokenizer });
    } finally {
      await folder.weights.close();
    }
  }

  // -------------------------------------------------------------------------------------------
  // images

  /**
   * Vision features and image embeddings of `pixel_values` `[B, C, H, W]`, cached per content: the
   * same pixels (in this tensor or another) reuse them; a tensor refilled in place is a new image.
   */
  encodePixels(pixelValues: Tensor, opts: { cache?: boolean } = {}): ImageFeatures {
    this.alive();
    // while training the adapter changes between steps: nothing is cached
    const useCache = cacheOption(opts) && !this.trainingMode;
    if (!(pixelValues instanceof Tensor))
      throw new InputError("pixel_values must be a Tensor [batch, channels, height, width]");
    const hit = useCache ? this.cache.get(pixelValues) : undefined;
    if (hit) return hit;
    const visionLastHiddenState = this.vision.forward(pixelValues).lastHiddenState;
    this.stats.visionRuns++;
    const f = this.encodeFeatures(visionLastHiddenState);
    if (useCache) this.cache.set(pixelValues, f);
    return f;
  }

  /** Image embeddings from vision features computed elsewhere (`[B, T_img, Dv]`). */
  encodeFeatures(visionLastHiddenState: Tensor<"f32">): ImageFeatures {
    this.alive();
    const proj = this.adapter.project(visionLastHiddenState);
    this.stats.adapterRuns++;
    return { ...proj, visionLastHiddenState, batchSize: visionLastHiddenState.shape[0]! };
  }

  /**
   * Features of an image or a batch of images: pixel values, images (preprocessed by the vision
   * tower's processor), or features already computed (returned as they are). The result is cached
   * per pixel content (see `encodePixels`): asking about the same picture again reuses it.
   */
  async encodeImage(image: ImageArg, opts: { cache?: boolean } = {}): Promise<ImageFeatures> {
    this.alive();
    cacheOption(opts);
    if (isFeatures(image)) return image;
    if (image instanceof Tensor) return this.encodePixels(image, opts);
    if (typeof image !== "object" || image === null) throw new InputError("unsupported image argument");
    if (!this.vision.pixelValues) throw new InputError("this vision encoder takes pixel_values tensors only");
    const pixels = await this.vision.pixelValues(image as ImageInput | readonly ImageInput[]);
    return this.encodePixels(pixels, opts);
  }

  /** Forget every cached image. */
  clearImageCache(): void {
    this.cache.clear();
  }

  /**
   * Free the model's memory now: the language model, the adapter and the vision tower are disposed
   * (those that can be), and the runtimes `fromPretrained` created are given back to core's
   * `releaseRuntime`. Every later call is a `DisposedError`; a generation in flight ends with one
   * at its next step.
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.languageModel.dispose();
    this.adapter.dispose?.();
    this.vision.dispose?.();
    for (const rt of this.ownedRuntimes) releaseRuntime(rt);
    this.ownedRuntimes = [];
    this.cache.clear();
    this.visionCache.clear();
  }

  /** True once `dispose()` has run. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  private alive(): void {
    if (this.isDisposed) throw new DisposedError("this VisionLanguageModel");
  }

  // -------------------------------------------------------------------------------------------
  // training (train.ts): MiniGPT-4's recipe, the projection (and optionally the Q-Former) trains

  /** The Q-Former adapter (training needs it). */
  private qformerAdapter(what: string): QFormerAdapter {
    const a = this.adapter;
    if (!(a instanceof QFormerAdapter))
      throw new InputError(`${what}: training needs the Q-Former adapter (QFormerAdapter), this model has another`);
    return a;
  }

  /**
   * Training mode: the projection trains (and the Q-Former with `trainQFormer`); the language
   * model plans its training buffers frozen (`requiresGrad: false`: backward reaches the image
   * embeddings, no weight gradient) and the vision tower only runs forward. Image features are not
   * cached while training (the adapter changes); `eval()` ends training mode.
   */
  train(opts: VLMTrainOptions = {}): this {
    this.alive();
    if (opts === null || typeof opts !== "object")
      throw new InputError(`train options must be an object, got ${String(opts)}`);
    if (opts.trainQFormer !== undefined && typeof opts.trainQFormer !== "boolean")
      throw new InputError(`train: trainQFormer must be a boolean, got ${String(opts.trainQFormer)}`);
    const a = this.qformerAdapter("train");
    const tq = opts.trainQFormer ?? false;
    if (tq && a.qformer.runtime !== a.projection.runtime)
      throw new InputError(
        "train: trainQFormer needs the Q-Former and the projection on one runtime (as the loaders make them)",
      );
    const { maxBatch, maxSeqLen } = opts;
    this.languageModel.train({
      ...(maxBatch !== undefined ? { maxBatch } : {}),
      ...(maxSeqLen !== undefined ? { maxSeqLen } : {}),
      requiresGrad: false,
      ignoreIndex: -100,
      shiftLabels: true,
      labelSmoothing: 0,
    });
    a.projection.train();
    a.qformer.train(tq);
    this.trainQFormer = tq;
    this.trainingMode = true;
    this.cache.clear();
    return this;
  }

  /** Inference mode: the trained adapter answers from now on (the image cache starts empty). */
  eval(): this {
    this.alive();
    if (!this.trainingMode) return this;
    const a = this.qformerAdapter("eval");
    this.languageModel.eval();
    a.projection.eval();
    a.qformer.eval();
    this.trainingMode = false;
    this.cache.clear();
    return this;
  }

  /** True between `train()` and `eval()`. */
  get training(): boolean {
    return this.trainingMode;
  }

  /** The runtime holding the trainable parameters (the projection's; the Q-Former shares it). */
  get runtime(): Runtime {
    return this.qformerAdapter("runtime").projection.runtime;
  }

  /**
   * What trains, under the checkpoint's names: the projection (`language_projection.*`, or
   * `llama_proj.*` for MiniGPT-4), and with `train({ trainQFormer: true })` the Q-Former
   * (`query_tokens`, `qformer.*`) before it. Pick among them with nn's `selectParams`.
   */
  parameters(): TrainParam[] {
    this.alive();
    const a = this.qformerAdapter("parameters");
    return [...(this.trainQFormer ? a.qformer.parameters() : []), ...a.projection.parameters()];
  }

  /** Set the trainable parameters' gradients to 0. */
  zeroGrad(): void {
    for (const p of this.parameters()) this.runtime.heap.f32(p.grad, p.size).fill(0);
  }

  /**
   * nn's `Trainable`: forward over the batch, mean cross-entropy over the answer tokens, and
   * backward through the frozen language model into the projection (and the Q-Former): adds
   * `scale · ∂loss/∂θ` into the gradients of `parameters()`. Needs training mode.
   */
  lossAndGrad(batch: readonly VLMExample[], scale: number): BatchResult {
    this.alive();
    if (!this.trainingMode) throw new InputError("lossAndGrad: the model is in inference mode; call train() first");
    return this.runBatch(batch, scale, "lossAndGrad");
  }

  /** The mean answer loss of a batch, without gradients (training mode). */
  evaluate(batch: readonly VLMExample[]): BatchResult {
    this.alive();
    if (!this.trainingMode) throw new InputError("evaluate: call train() first (it plans the training buffers)");
    return this.runBatch(batch, 0, "evaluate");
  }

  private runBatch(batch: readonly VLMExample[], scale: number, what: string): BatchResult {
    if (!Array.isArray(batch) || batch.length === 0)
      throw new InputError(`${what}: the batch must be a non-empty array of examples`);
    if (typeof scale !== "number" || !Number.isFinite(scale))
      throw new InputError(`${what}: scale must be a finite number, got ${String(scale)}`);
    const a = this.qformerAdapter(what);
    const pixels = batch.map((ex, b) => checkExample(ex, b, what));
    const M = a.numQueryTokens;
    const E = this.languageModel.arch.dim;
    const V = this.languageModel.config.vocab_size;
    const rows = padRows(
      batch.map((ex, b) => {
        const q = ex.question;
        const { prefixIds, suffixIds } =
          typeof q === "string"
            ? this.promptIds(q, 1)
            : this.promptIds({ prefixIds: [q.prefixIds], suffixIds: [q.suffixIds] });
        idRows([ex.answerIds], `${what}: example ${b}: answerIds`, V);
        return layOut(prefixIds[0]!, M, suffixIds[0]!, ex.answerIds);
      }),
    );
    // frozen vision features, one image at a time (cached), then the adapter over the batch
    const feats = pixels.map((px) => {
      let f = this.visionCache.get(px);
      if (!f) {
        f = this.vision.forward(px).lastHiddenState;
        this.stats.visionRuns++;
        this.visionCache.set(px, f);
      }
      return f;
    });
    const [T, Dv] = [feats[0]!.shape[1]!, feats[0]!.shape[2]!];
    const img = new Float32Array(batch.length * T * Dv);
    feats.forEach((f, b) => {
      if (f.shape[1] !== T)
        throw new ShapeError(
          `${what}: example ${b}'s image gives ${f.shape[1]} vision tokens, example 0's ${T} (one image size per batch)`,
        );
      img.set(f.data as Float32Array, b * T * Dv);
    });
    const h = a.qformer.forward(new Tensor(img, [batch.length, T, Dv]));
    const emb = a.projection.forward(h);
    this.stats.adapterRuns++;
    const lmRows = lmBatch(rows, emb.data as Float32Array, M * E);
    if (scale === 0) {
      const r = this.languageModel.evaluate(lmRows);
      return { loss: r.loss, count: r.count };
    }
    const r = this.languageModel.lossAndGrad(lmRows, scale);
    const dEmb = new Float32Array(batch.length * M * E);
    r.embedsGrads?.forEach((g, b) => {
      if (g) dEmb.set(g, b * M * E);
    });
    const dq = a.projection.backward(new Tensor(dEmb, [batch.length, M, E]), this.trainQFormer);
    if (this.trainQFormer) a.qformer.backward(dq);
    return { loss: r.loss, count: r.count };
  }

  // -------------------------------------------------------------------------------------------
  // prompts

  /** `[B, n]` ids → `[B, n, E]` token embeddings of the language model. */
  embedTokens(ids: ArrayLike<number>[] | Tensor): Tensor<"f32"> {
    this.alive();
    return this.languageModel.embedTokens(ids);
  }

  /**
   * Question(s) → ids before and after the image slot, one row per prompt. A text question is
   * tokenized on each side of the slot, the first side with the tokenizer's special tokens (or as
   * `bosTokenId` says). Given ids are used as they are.
   */
  promptIds(question: QuestionArg, rows = 1): { prefixIds: Int32Array[]; suffixIds: Int32Array[] } {
    this.alive();
    const V = this.languageModel.config.vocab_size;
    if (typeof question === "object" && question !== null && !Array.isArray(question) && "prefixIds" in question) {
      return {
        prefixIds: idRows(question.prefixIds, "prefix_ids", V),
        suffixIds: idRows(question.suffixIds, "suffix_ids", V),
      };
    }
    const tok = this.tokenizer;
    if (!tok) throw new InputError("a text question needs a tokenizer (load one, or pass prefixIds/suffixIds)");
    const qs =
      typeof question === "string" ? new Array<string>(rows).fill(question) : [...(question as readonly string[])];
    if (qs.length === 0) throw new InputError("no question given");
    const parts: ImagePromptIds[] = qs.map((q) => tokenizeImagePrompt(tok, this.template, q, this.bosTokenId));
    const pre = parts.map((p) => p.prefixIds);
    const suf = parts.map((p) => p.suffixIds);
    suf.forEach((s, b) => {
      if (s.length !== suf[0]!.length || pre[b]!.length !== pre[0]!.length) {
        throw new InputError(
          `questions of a batch must have the same token lengths (question 0: ${pre[0]!.length} + ${suf[0]!.length}, question ${b}: ${pre[b]!.length} + ${s.length}); ask them one at a time`,
        );
      }
    });
    // a tokenizer's ids go through the same check as given ones
    return { prefixIds: idRows(pre, "prefix_ids", V), suffixIds: idRows(suf, "suffix_ids", V) };
  }

  /** `inputs_embeds` `[B, P + M + S, E]`: token embeddings with the image embeddings in the slot. */
  inputsEmbeds(
    features: ImageFeatures,
    prefixIds: ArrayLike<number>[] | Tensor,
    suffixIds: ArrayLike<number>[] | Tensor,
  ): Tensor<"f32"> {
    return spliceImageEmbeds({
      imageEmbeds: features.imageEmbeds,
      prefixIds,
      suffixIds,
      embed: (ids) => this.languageModel.embedTokens(ids),
    });
  }

  /**
   * One forward pass over a prompt with an image: every intermediate result and the logits
   * `[B, P + M + S, V]`. The KV cache then holds the prompt (a following `languageModel.decode`
   * continues it).
   */
  async forward(
    image: ImageArg,
    question: QuestionArg,
  ): Promise<ImageFeatures & { inputsEmbeds: Tensor<"f32">; logits: Tensor<"f32"> }> {
    const f = await this.encodeImage(image);
    const { prefixIds, suffixIds } = this.promptIds(question, f.batchSize);
    const inputsEmbeds = this.inputsEmbeds(f, prefixIds, suffixIds);
    const logits = this.languageModel.prefillEmbeds(inputsEmbeds, { logits: "all" }).logits!;
    return { ...f, inputsEmbeds, logits };
  }

  // -------------------------------------------------------------------------------------------
  // generation

  /**
   * Answer a question about an image, streamed: an async iterator of chunks (one per token per
   * row), returning the whole result. Sampling, stop ids/strings, `signal` and `onToken` are
   * @wasmformer/llm's `GenerateOptions`; with a tokenizer, generation also stops at `###` (the
   * next MiniGPT-4 turn).
   */
  async *generate(
    image: ImageArg,
    question: QuestionArg,
    opts: VLMGenerateOptions = {},
  ): AsyncGenerator<VLMGenerationChunk, VLMGenerationResult, void> {
    this.alive();
    const cfg = this.languageModel.config;
    checkGenerateOptions(opts, cfg.vocab_size);
    const f = await this.encodeImage(image, { cache: cacheOption(opts) });
    const { prefixIds, suffixIds } = this.promptIds(question, f.batchSize);
    const inputsEmbeds = this.inputsEmbeds(f, prefixIds, suffixIds);
    const B = inputsEmbeds.shape[0]!;
    const sep = this.separator;
    const stop = this.tokenizer ? [...new Set([...(opts.stop ?? []), sep])] : opts.stop;
    const N = opts.maxNewTokens ?? 20;
    const stopIds = stopIdSet(opts.stopIds, cfg);
    const { onToken, cache: _cache, ...rest } = opts;
    const it = this.languageModel.generate({ inputsEmbeds }, { ...rest, stop });
    try {
      // answer streaming: hold back a tail that may begin the separator; stop at it
      const pending = new Array<string>(B).fill("");
      const full = new Array<string>(B).fill("");
      const done = new Array<boolean>(B).fill(false);
      for (;;) {
        const r = await it.next();
        if (r.done) {
          return { ...r.value, answers: r.value.texts.map((t) => answerText(t, sep)) };
        }
        const c = r.value;
        let answer = "";
        if (!done[c.row]) {
          full[c.row] += c.text;
          pending[c.row] += c.text;
          const p = pending[c.row]!;
          const at = p.indexOf(sep);
          const last =
            c.step === N - 1 ||
            stopIds.has(c.token) ||
            (stop ?? []).some((s) => s.length > 0 && full[c.row]!.includes(s));
          if (at >= 0) {
            answer = p.slice(0, at);
            done[c.row] = true;
          } else if (last) {
            answer = p;
            done[c.row] = true;
          } else {
            let keep = Math.min(sep.length - 1, p.length);
            while (keep > 0 && !sep.startsWith(p.slice(p.length - keep))) keep--;
            answer = p.slice(0, p.length - keep);
            pending[c.row] = p.slice(p.length - keep);
          }
          if (done[c.row]) pending[c.row] = "";
        }
        const chunk: VLMGenerationChunk = { ...c, answer };
        onToken?.(chunk);
        yield chunk;
      }
    } finally {
      await it.return(undefined as never); // an early exit ends the language model's generation (and frees its context)
    }
  }

  /** `generate` run to the end. */
  async generateAll(
    image: ImageArg,
    question: QuestionArg,
    opts: VLMGenerateOptions = {},
  ): Promise<VLMGenerationResult> {
    const it = this.generate(image, question, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** The answer (text up to `###`, trimmed) to one question about one image. */
  async ask(image: ImageArg, question: string, opts: VLMGenerateOptions = {}): Promise<string> {
    const r = await this.generateAll(image, question, opts);
    return r.answers[0]!;
  }
}
