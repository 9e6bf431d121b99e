/**
 * The adapter between a vision encoder and a language model, usable on its own: it turns vision
 * features into embeddings in the LM's input space (the "projected prefix"), and splices them
 * between the token embeddings of a prompt, so that any encoder and any LM with an embedding
 * function can be combined:
 *
 * ```
 * imageEmbeds   = adapter.project(visionFeatures)                          (B, M, E)
 * inputs_embeds = concat(embed(prefix_ids), imageEmbeds, embed(suffix_ids))   (B, P + M + S, E)
 * ```
 *
 * Two adapters: `QFormerAdapter` (BLIP-2 / MiniGPT-4: Q-Former + `language_projection`, M = Q
 * query tokens) and `LlavaProjector` (LLaVA: a linear–GELU–linear MLP, M = the image tokens).
 */
import { InputError, ShapeError, Tensor } from "@wasmformer/core";
import { toIdRows } from "@wasmformer/llm";
import type { LinearProjector } from "./projector.js";
import type { Blip2QFormerModel } from "./qformer.js";

/** What an adapter returns for a batch of images. */
export interface ImageProjection {
  /** `[B, M, E]`: the embeddings that take the image slot's place. */
  imageEmbeds: Tensor<"f32">;
  /** `[B, Q, Dq]`: the Q-Former's output, for the Q-Former adapter. */
  qformerLastHiddenState?: Tensor<"f32">;
}

/** Vision features → embeddings in a language model's input space. */
export interface ImageAdapter {
  /** Width of the vision features it reads. */
  readonly inputDim: number;
  /** Width of the embeddings it produces (the LM's embedding width). */
  readonly outputDim: number;
  /** `[B, T, inputDim]` vision features (e.g. a ViT's `last_hidden_state`) → image embeddings. */
  project(visionFeatures: Tensor): ImageProjection;
  /** Free its memory (called by `VisionLanguageModel.dispose`, when present). */
  dispose?(): void;
}

/**
 * A language model's token-embedding function: `[B, n]` ids → `[B, n, E]` f32 (HF
 * `get_input_embeddings()(ids)`; `GPT2LMHeadModel.embedTokens` from @wasmformer/llm is one).
 */
export type EmbedFn = (ids: Int32Array[]) => Tensor;

/** BLIP-2 / MiniGPT-4: the Q-Former's queries read the image, `language_projection` maps them to the LM. */
export class QFormerAdapter implements ImageAdapter {
  constructor(
    readonly qformer: Blip2QFormerModel,
    readonly projection: LinearProjector,
  ) {
    if (projection.inputDim !== qformer.config.hidden_size) {
      throw new ShapeError(
        `language_projection reads width ${projection.inputDim}, the Q-Former produces ${qformer.config.hidden_size}`,
      );
    }
  }
  get inputDim(): number {
    return this.qformer.config.encoder_hidden_size;
  }
  get outputDim(): number {
    return this.projection.outputDim;
  }
  /** Number of image embeddings per image (the query tokens). */
  get numQueryTokens(): number {
    return this.qformer.numQueryTokens;
  }
  project(visionFeatures: Tensor): ImageProjection {
    const h = this.qformer.forward(visionFeatures);
    return { imageEmbeds: this.projection.forward(h), qformerLastHiddenState: h };
  }
  /** Dispose the Q-Former and the projection. */
  dispose(): void {
    this.qformer.dispose();
    this.projection.dispose();
  }
}

/**
 * Id rows from arrays, typed arrays or an integer `[B, n]` tensor (n may be 0); with `vocabSize`,
 * every id is checked to lie in [0, vocabSize) (@wasmformer/llm `checkTokenId`).
 */
export function idRows(ids: ArrayLike<number>[] | Tensor, what: string, vocabSize?: number): Int32Array[] {
  const rows = toIdRows(ids, what, vocabSize);
  const n = rows[0]?.length ?? 0;
  rows.forEach((r, b) => {
    if (r.length !== n) throw new InputError(`${what} rows differ in length: row 0 has ${n}, row ${b} has ${r.length}`);
  });
  return rows;
}

/** Embeddings of `[B, n]` ids through `embed`, checked to be `[B, n, E]` f32. */
function embedRows(embed: EmbedFn, rows: Int32Array[], E: number, what: string): Float32Array {
  const B = rows.length;
  const n = rows[0]?.length ?? 0;
  if (n === 0) return new Float32Array(0); // an empty part: the embedding function is not called
  const t = embed(rows);
  if (!(t instanceof Tensor) || t.dtype !== "f32")
    throw new InputError(`the embedding function must return an f32 Tensor (for ${what})`);
  if (t.ndim !== 3 || t.shape[0] !== B || t.shape[1] !== n || t.shape[2] !== E) {
    throw new ShapeError(
      `the embedding function returned [${t.shape.join(", ")}] for ${what}, expected [${B}, ${n}, ${E}]`,
    );
  }
  return t.data as Float32Array;
}

/**
 * `inputs_embeds = concat(embed(prefix_ids), imageEmbeds, embed(suffix_ids))` along the sequence:
 * `[B, P + M + S, E]`. P or S may be 0. `imageEmbeds` `[B, M, E]` (or `[1, M, E]`, shared by all rows).
 */
export function spliceImageEmbeds(opts: {
  imageEmbeds: Tensor;
  prefixIds: ArrayLike<number>[] | Tensor;
  suffixIds: ArrayLike<number>[] | Tensor;
  embed: EmbedFn;
}): Tensor<"f32"> {
  const img = opts.imageEmbeds;
  if (!(img instanceof Tensor) || img.dtype !== "f32" || img.ndim !== 3)
    throw new ShapeError(`imageEmbeds must be an f32 Tensor [batch, tokens, width]`);
  const [Bi, M, E] = img.shape as [number, number, number];
  const pre = idRows(opts.prefixIds, "prefix_ids");
  const suf = idRows(opts.suffixIds, "suffix_ids");
  const B = pre.length;
  if (B === 0) throw new InputError("prefix_ids has no rows (give one row per image, possibly empty)");
  if (suf.length !== B) throw new InputError(`prefix_ids has ${B} rows, suffix_ids has ${suf.length}`);
  if (Bi !== B && Bi !== 1) throw new InputError(`imageEmbeds has ${Bi} images, the prompt has ${B} rows`);
  const P = pre[0]!.length;
  const S = suf[0]!.length;
  const pe = embedRows(opts.embed, pre, E, "prefix_ids");
  const se = embedRows(opts.embed, suf, E, "suffix_ids");
  const T = P + M + S;
  const out = new Float32Array(B * T * E);
  const id = img.data as Float32Array;
  for (let b = 0; b < B; b++) {
    const o = b * T * E;
    out.set(pe.subarray(b * P * E, (b + 1) * P * E), o);
    const bi = Bi === 1 ? 0 : b;
    out.set(id.subarray(bi * M * E, (bi + 1) * M * E), o + P * E);
    out.set(se.subarray(b * S * E, (b + 1) * S * E), o + (P + M) * E);
  }
  return new Tensor(out, [B, T, E], "f32");
}

/**
 * The adapter alone: vision features → projected image embeddings → `inputs_embeds` of a prompt
 * with an image slot, for any LM given by its embedding function.
 * @example
 * ```ts
 * const { inputsEmbeds } = imagePrompt(adapter, features, { prefixIds: [[1, 2]], suffixIds: [[3]], embed: (ids) => lm.embedTokens(ids) });
 * ```
 */
export function imagePrompt(
  adapter: ImageAdapter,
  visionFeatures: Tensor,
  opts: { prefixIds: ArrayLike<number>[] | Tensor; suffixIds: ArrayLike<number>[] | Tensor; embed: EmbedFn },
): ImageProjection & { inputsEmbeds: Tensor<"f32"> } {
  const proj = adapter.project(visionFeatures);
  return { ...proj, inputsEmbeds: spliceImageEmbeds({ ...opts, imageEmbeds: proj.imageEmbeds }) };
}
