/**
 * MiniGPT-4 (Zhu et al. 2023, https://github.com/Vision-CAIR/MiniGPT-4): its own checkpoint holds
 * only the trained projection `llama_proj` (`weight [llama hidden_size, 768]`, `bias`); the rest
 * is borrowed — the vision tower, BLIP-2's Q-Former with its `query_tokens`, and a Llama (Vicuna).
 * `MiniGPT4.fromPretrained` puts the four sources together:
 *
 * ```
 * img    = vision(pixel_values)                               [B, T_img, Dv]
 * q      = Q-Former(query_tokens ⟶ img)                       [B, Q, Dq]
 * embeds = llama_proj(q) = q · llama_proj.weightᵀ + bias       [B, Q, E]
 * prompt = "###Human: <Img><ImageHere></Img> {question} ###Assistant: "
 * inputs = [embed_tokens(ids⁺(text before <ImageHere>)); embeds; embed_tokens(ids(text after))]
 * ```
 * as MiniGPT-4's `get_context_emb` splits the prompt at `<ImageHere>` and tokenizes the first part
 * with the tokenizer's special tokens (ids⁺; a Llama tokenizer: BOS first) and the rest without.
 */
import {
  type CheckableSource,
  ConfigError,
  checkTensors,
  createRuntime,
  type HubOptions,
  InputError,
  openModelFiles,
  openSafetensors,
  parseSafetensors,
  type Runtime,
  releaseRuntime,
  tensorMeta,
  WeightsError,
} from "@wasmformer/core";
import { AutoModelForCausalLM, causalLMType, loadTokenizer, parseGPT2Config, parseLlamaConfig } from "@wasmformer/llm";
import { openCheckpointFolder, parseViTConfig, ViTModel } from "@wasmformer/vit";
import { QFormerAdapter } from "./adapter.js";
import { MINIGPT4_TEMPLATE, parseQFormerConfig } from "./config.js";
import { LinearProjector } from "./projector.js";
import { Blip2QFormerModel, checkQFormerWeights } from "./qformer.js";
import { VisionLanguageModel, type VLMLoadOptions } from "./vlm-model.js";
import type { WeightSource } from "./weights.js";

type Weights = Uint8Array | ArrayBuffer | WeightSource;

/** The four parts of a MiniGPT-4 model. */
export interface MiniGPT4Sources {
  /** The vision tower: a Hugging Face `ViTModel` checkpoint (`config.json`, weights, optional `preprocessor_config.json`). */
  vision: { config: unknown; weights: Weights; preprocessor?: unknown };
  /**
   * BLIP-2's Q-Former: `config` is a `Blip2QFormerConfig`, or a whole `Blip2Config` (its
   * `qformer_config` and `num_query_tokens` are read); `weights` hold `query_tokens` and
   * `qformer.*` (HF `Blip2Model` names; a whole BLIP-2 checkpoint may be given, its other tensors
   * are not read). The query count is `numQueryTokens`, else the config's, else `query_tokens`'s.
   */
  qformer: { config: unknown; weights: Weights; numQueryTokens?: number };
  /** MiniGPT-4's checkpoint: `llama_proj.weight [hidden_size, Dq]` and `llama_proj.bias [hidden_size]`, nothing else (unless `strict: false`). */
  projection: { weights: Weights };
  /** The language model: a Llama-family (or GPT-2) `config.json` and its weights (`AutoModelForCausalLM`). */
  llm: { config: unknown; weights: Weights };
}

export interface MiniGPT4Options extends VLMLoadOptions {
  /** Prompt template with `<ImageHere>` and `{question}` (default MiniGPT-4's Vicuna template). */
  template?: string;
  /** Where an answer ends: generation stops there (default MiniGPT-4's `###`). */
  separator?: string;
  /**
   * How the text before the image starts: default the tokenizer's special tokens (MiniGPT-4's
   * `add_special_tokens=True` on that part: a Llama tokenizer's BOS); a number: that id; null: none.
   */
  bosTokenId?: number | null;
}

/**
 * `config.json` of a MiniGPT-4 folder whose own weights are the trained Q-Former and projection
 * (`MiniGPT4.fromFolder`). The vision tower and the language model stay in their own folders,
 * named by path (relative to this folder, or absolute), so their weights are not copied.
 */
export interface MiniGPT4FolderConfig {
  model_type: "minigpt4";
  /** The ViT folder (`config.json`, `model.safetensors`, optional `preprocessor_config.json`). */
  vision_model_path: string;
  /** The language model folder (`config.json`, `model.safetensors`, the tokenizer). */
  language_model_path: string;
  /** A `Blip2QFormerConfig` (`encoder_hidden_size` defaults to the vision width). */
  qformer_config: Record<string, unknown>;
  /** Number of query tokens (default: the length of `query_tokens`). */
  num_query_tokens?: number;
  /**
   * The prompt template (`<ImageHere>`, `{question}`; default MiniGPT-4's) and the separator that
   * ends an answer (default `###`).
   */
  image_prompt?: { template?: string; separator?: string };
}

/** Folders of the four parts (Node): see `MiniGPT4.fromFolders`. */
export interface MiniGPT4Folders {
  /** A ViT folder: `config.json`, `model.safetensors`, optional `preprocessor_config.json`. */
  vision: string;
  /** A BLIP-2 folder (or one with the Q-Former alone): `config.json`, `model.safetensors`. */
  qformer: string;
  /** MiniGPT-4's projection as a safetensors file (`llama_proj.weight`, `llama_proj.bias`). */
  projection: string;
  /** A Llama folder: `config.json`, `model.safetensors`, the tokenizer. */
  llm: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const source = (w: Weights): WeightSource =>
  w instanceof Uint8Array || w instanceof ArrayBuffer ? parseSafetensors(w) : w;

/** Re-throw a ConfigError of a part with its field under `part.`. */
function inPart<T>(part: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const inner = e.field ? e.message.replace(`config: ${e.field}: `, "") : e.message.replace(/^config: /, "");
    throw new ConfigError(inner, e.field ? `${part}.${e.field}` : part);
  }
}

/** Open a part's folder; a config it cannot read is a ConfigError on `field` (the path in config.json). */
async function folderOf(field: string, dir: string): ReturnType<typeof openCheckpointFolder> {
  try {
    return await openCheckpointFolder(dir);
  } catch (e) {
    if (e instanceof ConfigError && !e.field) throw new ConfigError(e.message.replace(/^config: /, ""), field);
    throw e;
  }
}

/** Prefix a WeightsError of a part with the part's name. */
async function weightsOf<T>(part: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof WeightsError) throw new WeightsError(`${part}: ${e.message}`, e.names);
    throw e;
  }
}

/** The tensors of `src` whose names `keep` accepts. */
function filteredView(src: WeightSource, keep: (name: string) => boolean): WeightSource {
  const view: CheckableSource = {
    names: () => src.names().filter(keep),
    has: (n) => keep(n) && src.has(n),
    get: (n) => src.get(n),
  };
  if (typeof src.info === "function") view.info = src.info.bind(src);
  return view as WeightSource;
}

/** The tensors of `src` named `query_tokens` or `qformer.*` (a whole BLIP-2 checkpoint holds more). */
function qformerView(src: WeightSource): WeightSource {
  return filteredView(src, (n) => n === "query_tokens" || n.startsWith("qformer."));
}

/** The tensors of `src` under `prefix` (the projection's part of a one-file checkpoint). */
function prefixedView(src: WeightSource, prefix: string): WeightSource {
  return filteredView(src, (n) => n.startsWith(prefix));
}

/** Check a `MiniGPT4FolderConfig`; a `ConfigError` names the field at fault. */
function parseFolderConfig(raw: unknown): MiniGPT4FolderConfig {
  if (!isObject(raw)) throw new ConfigError("expected a JSON object");
  if (raw.model_type !== "minigpt4")
    throw new ConfigError(`expected "minigpt4", got ${JSON.stringify(raw.model_type)}`, "model_type");
  for (const k of ["vision_model_path", "language_model_path"] as const) {
    const v = raw[k];
    if (typeof v !== "string" || v.length === 0)
      throw new ConfigError(`expected a folder path (relative to the config's folder), got ${JSON.stringify(v)}`, k);
  }
  if (!isObject(raw.qformer_config)) throw new ConfigError("expected a Blip2QFormerConfig object", "qformer_config");
  const ip = raw.image_prompt;
  if (ip !== undefined && !isObject(ip)) throw new ConfigError("expected { template, separator }", "image_prompt");
  if (ip?.template !== undefined && (typeof ip.template !== "string" || ip.template.split("<ImageHere>").length !== 2))
    throw new ConfigError(
      `expected a string with one "<ImageHere>", got ${JSON.stringify(ip.template)}`,
      "image_prompt.template",
    );
  if (ip?.separator !== undefined && (typeof ip.separator !== "string" || ip.separator.length === 0))
    throw new ConfigError(`expected a non-empty string, got ${JSON.stringify(ip.separator)}`, "image_prompt.separator");
  return raw as unknown as MiniGPT4FolderConfig;
}

/** Read the Q-Former config: a `Blip2QFormerConfig` or a `Blip2Config` with `qformer_config`. */
function qformerConfig(raw: unknown, visionWidth: number): { cfg: Record<string, unknown>; queries?: unknown } {
  if (!isObject(raw)) throw new ConfigError("expected a JSON object", "qformer");
  const whole = isObject(raw.qformer_config);
  const cfg = { ...((whole ? raw.qformer_config : raw) as Record<string, unknown>) };
  // as HF `Blip2Config`: the width of the image features comes from the vision tower when absent
  if (!("encoder_hidden_size" in cfg)) cfg.encoder_hidden_size = visionWidth;
  return { cfg, queries: whole ? raw.num_query_tokens : undefined };
}

export const MiniGPT4 = {
  /**
   * Build MiniGPT-4 from its four sources. Every config is read and every tensor name and shape is
   * checked before anything is loaded: `llama_proj.weight` must be `[hidden_size of the LLM,
   * hidden_size of the Q-Former]` (a `WeightsError` naming it otherwise, or when it is missing or
   * other tensors come with it); the Q-Former's `encoder_hidden_size` must be the vision width
   * (`ConfigError` `qformer.encoder_hidden_size`); an unknown LLM `model_type` is a `ConfigError`
   * on `llm.model_type`.
   */
  async fromPretrained(src: MiniGPT4Sources, opts: MiniGPT4Options = {}): Promise<VisionLanguageModel> {
    if (!isObject(src)) throw new InputError("expected { vision, qformer, projection, llm }");
    for (const k of ["vision", "qformer", "projection", "llm"] as const) {
      if (!isObject(src[k])) throw new InputError(`MiniGPT-4 source "${k}" is missing (expected an object)`);
      if (src[k].weights === undefined) throw new InputError(`MiniGPT-4 source "${k}" has no weights`);
    }
    const maxBatch = opts.maxBatch ?? 1;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`maxBatch must be a positive integer, got ${maxBatch}`);

    // ---- configs
    const visionCfg = inPart("vision", () => parseViTConfig(src.vision.config));
    const q = qformerConfig(src.qformer.config, visionCfg.hidden_size);
    const qCfg = inPart("qformer", () => parseQFormerConfig(q.cfg));
    if (qCfg.encoder_hidden_size !== visionCfg.hidden_size) {
      throw new ConfigError(
        `${qCfg.encoder_hidden_size} does not match the vision tower's hidden_size ${visionCfg.hidden_size}`,
        "qformer.encoder_hidden_size",
      );
    }
    const llmRaw = src.llm.config;
    const kind = inPart("llm", () => causalLMType(llmRaw));
    const E = inPart("llm", () =>
      kind === "gpt2" ? parseGPT2Config(llmRaw).n_embd : parseLlamaConfig(llmRaw).hidden_size,
    );

    // ---- names and shapes
    const qSrc = qformerView(source(src.qformer.weights));
    let Q = src.qformer.numQueryTokens ?? (q.queries as number | undefined);
    if (Q === undefined && qSrc.has("query_tokens")) Q = (await tensorMeta(qSrc, "query_tokens")).shape[1];
    if (Q === undefined)
      throw new WeightsError('qformer: missing "query_tokens" [1, Q, hidden_size]', ["query_tokens"]);
    if (!Number.isInteger(Q) || Q < 1)
      throw new ConfigError(`expected a positive integer, got ${JSON.stringify(Q)}`, "qformer.num_query_tokens");
    const strict = opts.strict ?? true;
    (await checkQFormerWeights(qSrc, qCfg, Q, { strict })).throwIfAny(
      `qformer (hidden_size ${qCfg.hidden_size}, ${qCfg.num_hidden_layers} layers, ${Q} queries)`,
    );
    const pSrc = source(src.projection.weights);
    const { faults } = await checkTensors(
      pSrc,
      [
        { name: "llama_proj.weight", shape: [E, qCfg.hidden_size] },
        { name: "llama_proj.bias", shape: [E] },
      ],
      { owns: () => true, strict },
    );
    faults.throwIfAny(
      `projection: MiniGPT-4 checkpoint (llama_proj: Q-Former hidden_size ${qCfg.hidden_size} → LLM ${kind === "gpt2" ? "n_embd" : "hidden_size"} ${E})`,
    );

    // ---- the parts (runtimes made here are the model's own; a caller's factory keeps its own)
    const owned: Runtime[] = [];
    const makeRt =
      opts.runtime ??
      (() => {
        const rt = createRuntime();
        owned.push(rt);
        return rt;
      });
    try {
      const vision = await weightsOf("vision", () =>
        ViTModel.fromPretrained(
          {
            config: src.vision.config,
            weights: source(src.vision.weights) as never,
            ...(src.vision.preprocessor !== undefined ? { preprocessor: src.vision.preprocessor } : {}),
          },
          { runtime: makeRt(), strict },
        ),
      );
      const qformer = await Blip2QFormerModel.fromWeights(qCfg, Q, qSrc, { runtime: makeRt(), strict });
      const projection = await LinearProjector.fromWeights(pSrc, {
        prefix: "llama_proj",
        runtime: qformer.runtime,
        strict,
      });
      const llm = await weightsOf("llm", () =>
        AutoModelForCausalLM.fromWeights(llmRaw as Record<string, unknown>, source(src.llm.weights), {
          maxBatch,
          runtime: makeRt(),
          strict,
        }),
      );
      return new VisionLanguageModel({
        vision,
        adapter: new QFormerAdapter(qformer, projection),
        languageModel: llm,
        tokenizer: opts.tokenizer,
        template: opts.template ?? MINIGPT4_TEMPLATE,
        ...(opts.separator !== undefined ? { separator: opts.separator } : {}),
        bosTokenId: opts.bosTokenId,
        ownedRuntimes: owned,
      });
    } catch (e) {
      for (const rt of owned) releaseRuntime(rt);
      throw e;
    }
  },

  /**
   * Load a MiniGPT-4 folder (Node) in one call: `config.json` (a `MiniGPT4FolderConfig`:
   * `model_type` `"minigpt4"`, the paths of the vision and language model folders, `qformer_config`,
   * `num_query_tokens`, optional `image_prompt.template` and `.separator`) and `model.safetensors` holding the
   * trained part: `query_tokens`, `qformer.*` and `llama_proj.weight` / `.bias`. The ViT and the
   * language model (with its tokenizer, unless `opts.tokenizer`) are read from their own folders.
   * @example
   * ```ts
   * const vlm = await MiniGPT4.fromFolder(await modelPath("digits-minigpt4")); // @wasmformer/models
   * console.log(await vlm.ask(pixelValues, "what digit is this?"));
   * ```
   */
  async fromFolder(dir: string, opts: MiniGPT4Options = {}): Promise<VisionLanguageModel> {
    if (typeof dir !== "string") throw new InputError("MiniGPT4.fromFolder: dir must be a path string");
    const path = (await import(/* @vite-ignore */ "node:path" as string)) as typeof import("node:path");
    const fs = (await import(/* @vite-ignore */ "node:fs/promises" as string)) as typeof import("node:fs/promises");
    const cfgFile = path.join(dir, "config.json");
    let text: string;
    try {
      text = await fs.readFile(cfgFile, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read ${cfgFile}: ${(e as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${cfgFile} is not valid JSON: ${(e as Error).message}`);
    }
    const cfg = parseFolderConfig(raw);
    const visionDir = path.resolve(dir, cfg.vision_model_path);
    const llmDir = path.resolve(dir, cfg.language_model_path);
    const own = await openSafetensors(path.join(dir, "model.safetensors")); // a missing file: InputError naming it
    const closers: { close(): Promise<void> }[] = [own];
    try {
      const strict = opts.strict ?? true;
      const stray = own.names().filter((n) => n !== "query_tokens" && !/^(qformer|llama_proj)\./.test(n));
      if (strict && stray.length > 0)
        throw new WeightsError(
          `${path.join(dir, "model.safetensors")}: unexpected ${stray.map((n) => `"${n}"`).join(", ")} (a MiniGPT-4 folder holds query_tokens, qformer.* and llama_proj.*)`,
          stray,
        );
      const vision = await folderOf("vision_model_path", visionDir);
      closers.push(vision.weights);
      const llm = await folderOf("language_model_path", llmDir);
      closers.push(llm.weights);
      const tokenizer = opts.tokenizer ?? (await loadTokenizer(llmDir));
      const template = opts.template ?? cfg.image_prompt?.template;
      const separator = opts.separator ?? cfg.image_prompt?.separator;
      return await MiniGPT4.fromPretrained(
        {
          vision,
          qformer: {
            config: { qformer_config: cfg.qformer_config, num_query_tokens: cfg.num_query_tokens },
            weights: own,
          },
          projection: { weights: prefixedView(own, "llama_proj.") },
          llm,
        },
        {
          ...opts,
          tokenizer,
          ...(template !== undefined ? { template } : {}),
          ...(separator !== undefined ? { separator } : {}),
        },
      );
    } finally {
      for (const c of closers) await c.close();
    }
  },

  /**
   * Load MiniGPT-4 from folders (Node) or model ids (`owner/name[@revision]`: see core's
   * `openModelFiles`; `opts` carries the hub options): the ViT folder, the BLIP-2 (Q-Former)
   * folder, MiniGPT-4's projection file (safetensors: a path or URL) and the Llama folder, whose tokenizer is used unless
   * `opts.tokenizer` is given. Weights are read one tensor at a time.
   */
  async fromFolders(dirs: MiniGPT4Folders, opts: MiniGPT4Options & HubOptions = {}): Promise<VisionLanguageModel> {
    if (!isObject(dirs)) throw new InputError("expected { vision, qformer, projection, llm } paths");
    for (const k of ["vision", "qformer", "projection", "llm"] as const)
      if (typeof dirs[k] !== "string") throw new InputError(`MiniGPT-4 path "${k}" must be a string`);
    const vision = await openCheckpointFolder(dirs.vision, opts);
    const closers: { close(): Promise<void> }[] = [vision.weights];
    try {
      const qformer = await openCheckpointFolder(dirs.qformer, opts);
      closers.push(qformer.weights);
      const llmFiles = await openModelFiles(dirs.llm, opts);
      const llm = await openCheckpointFolder(llmFiles);
      closers.push(llm.weights);
      const projection = await openSafetensors(dirs.projection); // a missing file: InputError naming it
      closers.push(projection);
      const tokenizer = opts.tokenizer ?? (await loadTokenizer(llmFiles));
      return await MiniGPT4.fromPretrained(
        {
          vision,
          qformer: { config: qformer.config, weights: qformer.weights },
          projection: { weights: projection },
          llm,
        },
        { ...opts, tokenizer },
      );
    } finally {
      for (const c of closers) await c.close();
    }
  },
};
