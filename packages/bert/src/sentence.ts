/**
 * Sentence embeddings as sentence-transformers computes them (`SentenceTransformer.encode` on an
 * all-MiniLM-L6-v2-style folder: Transformer → Pooling → optional Normalize):
 *
 *   tokens  = [CLS] wordpieces(strip(text)) [SEP], cut to max_seq_length, padded on the right
 *   h       = BertModel(tokens).last_hidden_state                     (n real tokens per row)
 *   cls     = h[0]
 *   max     = max over the n tokens of h[t]                            (element-wise)
 *   mean    = Σ h[t] / n
 *   mean_sqrt_len = Σ h[t] / √n
 *   pooled  = the selected modes concatenated in this order (sentence-transformers' `Pooling`)
 *   Normalize: v / max(‖v‖₂, 1e-12)
 *
 * Pooling runs on core's kernels (`reduce`, `copy2d`, `scale`) on the hidden states in the heap.
 */

import { ConfigError, DisposedError, field, InputError, RedOp, readConfig, Tensor } from "@wasmformer/core";
import type { SubwordTokenizer } from "@wasmformer/text";
import type { BertModel } from "./bert-model.js";
import type { BertPretrainedOptions } from "./pretrained.js";

export type PoolingMode = "cls" | "max" | "mean" | "mean_sqrt_len";

/** sentence-transformers' order of concatenation. */
const POOLING_ORDER: readonly PoolingMode[] = ["cls", "max", "mean", "mean_sqrt_len"];

export interface SentenceEmbedderOptions {
  /** pooling modes, concatenated in the given order (default `["mean"]`) */
  pooling?: readonly PoolingMode[];
  /** L2-normalise every embedding (a `Normalize` module; default false) */
  normalize?: boolean;
  /** tokens per text including [CLS] and [SEP] (default and upper bound: `max_position_embeddings`) */
  maxSeqLength?: number;
  /** lower-case texts before tokenizing (`do_lower_case` of sentence_bert_config.json; default false) */
  doLowerCase?: boolean;
}

export interface EmbedOptions {
  /** texts per forward pass (default 32) */
  batchSize?: number;
}

/** What the sentence-transformers files of a folder say (see `readSentenceTransformersConfig`). */
export interface SentenceTransformersConfig extends SentenceEmbedderOptions {
  /** folder of the Transformer module, relative to the model folder (`""` for the folder itself) */
  transformerPath: string;
  /** folder of the Pooling module, when `modules.json` lists one */
  poolingPath: string | undefined;
}

const MODULE = "sentence_transformers.models.";

/**
 * Read `modules.json`: a Transformer, then a Pooling and optionally a Normalize module. Without
 * `modules.json`, sentence-transformers uses mean pooling (`poolingPath` undefined, no Normalize).
 * @throws ConfigError naming `modules.json[i]` for any other module (Dense, …) or a malformed entry
 */
export function parseModulesJson(modules: unknown): SentenceTransformersConfig {
  if (!Array.isArray(modules)) throw new ConfigError("expected a list of modules", "modules.json");
  const out: SentenceTransformersConfig = { transformerPath: "", poolingPath: undefined, normalize: false };
  const want = ["Transformer", "Pooling", "Normalize"];
  modules.forEach((m, i) => {
    const at = `modules.json[${i}]`;
    const { type, path } = (m ?? {}) as { type?: unknown; path?: unknown };
    if (typeof type !== "string" || typeof path !== "string")
      throw new ConfigError(`expected {type: string, path: string}, got ${JSON.stringify(m)}`, at);
    const name = type.startsWith(MODULE) ? type.slice(MODULE.length) : type;
    if (name !== want[i]) {
      const order = i === 2 ? "Normalize" : want[i];
      throw new ConfigError(
        `module ${JSON.stringify(type)} is not supported here (supported: Transformer, Pooling, Normalize in this order; expected ${order})`,
        `${at}.type`,
      );
    }
    if (name === "Transformer") out.transformerPath = path;
    if (name === "Pooling") out.poolingPath = path;
    if (name === "Normalize") out.normalize = true;
  });
  if (modules.length < 2) throw new ConfigError("needs a Transformer and a Pooling module", "modules.json");
  return out;
}

const PoolingSchema = {
  word_embedding_dimension: field.optional(field.int({ positive: true })),
  pooling_mode_cls_token: field.bool({ default: false }),
  pooling_mode_max_tokens: field.bool({ default: false }),
  pooling_mode_mean_tokens: field.bool({ default: false }),
  pooling_mode_mean_sqrt_len_tokens: field.bool({ default: false }),
  pooling_mode_weightedmean_tokens: field.bool({
    default: false,
    check: (v) => v && "weighted-mean pooling is not supported",
  }),
  pooling_mode_lasttoken: field.bool({ default: false, check: (v) => v && "last-token pooling is not supported" }),
};

/**
 * The pooling modes of a `1_Pooling/config.json` object, in sentence-transformers' order.
 * @param hidden the model's hidden size (`word_embedding_dimension` must equal it)
 */
export function parsePoolingConfig(json: unknown, hidden: number): PoolingMode[] {
  const c = readConfig(json, PoolingSchema, { name: "1_Pooling/config.json" });
  if (c.word_embedding_dimension !== undefined && c.word_embedding_dimension !== hidden) {
    throw new ConfigError(
      `${c.word_embedding_dimension} differs from the model's hidden_size ${hidden}`,
      "word_embedding_dimension",
    );
  }
  const on: Record<PoolingMode, boolean> = {
    cls: c.pooling_mode_cls_token,
    max: c.pooling_mode_max_tokens,
    mean: c.pooling_mode_mean_tokens,
    mean_sqrt_len: c.pooling_mode_mean_sqrt_len_tokens,
  };
  const modes = POOLING_ORDER.filter((m) => on[m]);
  if (modes.length === 0) throw new ConfigError("no pooling mode is enabled", "pooling_mode_mean_tokens");
  return modes;
}

export class SentenceEmbedder {
  readonly model: BertModel;
  readonly tokenizer: SubwordTokenizer;
  readonly pooling: readonly PoolingMode[];
  readonly normalize: boolean;
  readonly maxSeqLength: number;
  readonly doLowerCase: boolean;
  /** Width of an embedding: hidden size × number of pooling modes. */
  readonly dimension: number;
  private disposed = false;

  /** @throws ConfigError for an unknown pooling mode or a `maxSeqLength` below 2 */
  constructor(model: BertModel, tokenizer: SubwordTokenizer, opts: SentenceEmbedderOptions = {}) {
    const pooling = opts.pooling ?? ["mean"];
    if (pooling.length === 0) throw new ConfigError("at least one pooling mode is needed", "pooling");
    for (const p of pooling) {
      if (!POOLING_ORDER.includes(p)) {
        throw new ConfigError(
          `unknown pooling mode ${JSON.stringify(p)} (known: ${POOLING_ORDER.join(", ")})`,
          "pooling",
        );
      }
    }
    const P = model.config.max_position_embeddings;
    const max = opts.maxSeqLength ?? P;
    if (!Number.isInteger(max) || max < 2)
      throw new ConfigError(`expected an integer ≥ 2 ([CLS] and [SEP]), got ${max}`, "max_seq_length");
    this.model = model;
    this.tokenizer = tokenizer;
    this.pooling = [...pooling];
    this.normalize = opts.normalize ?? false;
    this.maxSeqLength = Math.min(max, P);
    this.doLowerCase = opts.doLowerCase ?? false;
    this.dimension = model.hiddenSize * pooling.length;
  }

  /**
   * Load a sentence-transformers folder (Node) or Hugging Face model id (`owner/name[@revision]`,
   * e.g. `sentence-transformers/all-MiniLM-L6-v2`; downloaded once and cached, see core's
   * `openModelFiles`): the BERT model and `tokenizer.json` (or `vocab.txt`)
   * of the Transformer module, `modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`
   * (`max_seq_length`, `do_lower_case`); without `max_seq_length`, the tokenizer's
   * `model_max_length` (tokenizer_config.json) bounded by `max_position_embeddings`.
   */
  static async fromPretrained(folder: string, opts: BertPretrainedOptions = {}): Promise<SentenceEmbedder> {
    const { loadSentenceTransformers } = await import("./pretrained.js");
    return loadSentenceTransformers(folder, opts);
  }

  /**
   * Embed texts: `[N, dimension]` (row i is text i). Texts are batched by length (longest first, as
   * sentence-transformers does), so a batch holds similar lengths; the result does not depend on it.
   * @throws InputError for a text that is not a string (naming `texts[i]`) or a bad `batchSize`
   */
  embed(texts: readonly string[], opts: EmbedOptions = {}): Tensor<"f32"> {
    if (this.disposed) throw new DisposedError("SentenceEmbedder");
    if (!Array.isArray(texts)) throw new InputError("texts must be an array of strings");
    texts.forEach((t, i) => {
      if (typeof t !== "string") throw new InputError(`texts[${i}] is ${t === null ? "null" : typeof t}, not a string`);
    });
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new InputError(`batchSize must be a positive integer, got ${batchSize}`);
    const N = texts.length;
    const W = this.dimension;
    const out = new Float32Array(N * W);
    const order = texts.map((_, i) => i).sort((a, b) => texts[b]!.length - texts[a]!.length || a - b);
    for (let s = 0; s < N; s += batchSize) {
      const rows = order.slice(s, s + batchSize);
      const pooled = this.embedBatch(rows.map((i) => texts[i]!));
      for (const [r, i] of rows.entries()) out.set(pooled.subarray(r * W, (r + 1) * W), i * W);
    }
    if (this.normalize) {
      for (let i = 0; i < N; i++) {
        const v = out.subarray(i * W, (i + 1) * W);
        let ss = 0;
        for (let j = 0; j < W; j++) ss += v[j]! * v[j]!;
        const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
        for (let j = 0; j < W; j++) v[j]! *= inv;
      }
    }
    return new Tensor(out, [N, W], "f32");
  }

  /** Release the model's memory (when it created its runtime). */
  dispose(): void {
    this.disposed = true;
    this.model.dispose();
  }

  /** Tokenize one batch, run the encoder, pool in the heap: `[rows, dimension]`. */
  private embedBatch(texts: string[]): Float32Array {
    const prepared = texts.map((t) => (this.doLowerCase ? t.trim().toLowerCase() : t.trim()));
    const enc = this.tokenizer.encodeBatch(prepared, {
      addSpecialTokens: true,
      padding: "longest",
      truncation: true,
      maxLength: this.maxSeqLength,
      padToMultipleOf: undefined,
      paddingSide: "right",
      truncationSide: "right",
    });
    const lens = enc.encodings.map((e) => e.ids.length);
    const D = this.model.hiddenSize;
    const W = this.dimension;
    const rt = this.model.runtime;
    const opts = { attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds };
    return this.model.withLastHiddenState(enc.inputIds, opts, (h, B, T) => {
      const y = rt.heap.allocF32(B * W);
      for (let b = 0; b < B; b++) {
        const hb = h + b * T * D * 4;
        const n = lens[b]!;
        this.pooling.forEach((mode, m) => {
          const dst = y + (b * W + m * D) * 4;
          if (mode === "cls") rt.k.copy2d(hb, D, dst, D, 1, D);
          else if (mode === "max") rt.k.reduce(hb, dst, 1, n, D, RedOp.max);
          else if (mode === "mean") rt.k.reduce(hb, dst, 1, n, D, RedOp.mean);
          else {
            rt.k.reduce(hb, dst, 1, n, D, RedOp.sum);
            rt.k.scale(dst, dst, D, 1 / Math.sqrt(n), 0);
          }
        });
      }
      return rt.heap.f32(y, B * W).slice();
    });
  }
}
