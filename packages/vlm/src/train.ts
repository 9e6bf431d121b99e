/**
 * MiniGPT-4's training recipe (Zhu et al. 2023, §3.1): the vision encoder and the language model
 * stay frozen, only the projection (`language_projection` / MiniGPT-4's `llama_proj`) trains —
 * optionally the Q-Former with it. One example is an image, a prompt with an image slot and the
 * target answer; the loss is the language model's mean cross-entropy over the answer tokens only
 * (labels −100 elsewhere, as MiniGPT-4 masks the prompt and the image):
 *
 * ```
 * img  = ViT(pixels)                         frozen, features cached per image
 * q    = Q-Former(img)                       trains with trainQFormer (else frozen, no backward)
 * emb  = projection(q)                       trains
 * x    = [wte(prefix); emb; wte(suffix); wte(answer)]     labels = [−100 …; answer]
 * loss = CE(LM(x), labels)                   LM frozen: backward runs through it to ∂loss/∂emb only
 * backward: ∂emb → projection (dW, db; dq when the Q-Former trains) → Q-Former (down to query_tokens)
 * ```
 * Rows of a batch are padded on the right to the longest (pad positions have label −100 and, the
 * attention being causal, change nothing before them).
 */
import { InputError, ShapeError, Tensor } from "@wasmformer/core";
import type { LMExample } from "@wasmformer/llm";
import type { BatchResult } from "@wasmformer/nn";

/** One training example of a vision-language model. */
export interface VLMExample {
  /** `[1, C, H, W]` (or `[C, H, W]`) pixel values, as the vision tower takes them. */
  pixelValues: Tensor;
  /** The question (text: needs the tokenizer; filled into the template) or the ids around the image slot. */
  question: string | { prefixIds: ArrayLike<number>; suffixIds: ArrayLike<number> };
  /** Target answer ids (MiniGPT-4 appends its end symbol `###` to the answer text before tokenizing). */
  answerIds: ArrayLike<number>;
}

export interface VLMTrainOptions {
  /** Also train the Q-Former (and `query_tokens`); default false: the projection only, as MiniGPT-4. */
  trainQFormer?: boolean;
  /** Largest batch (sizes the language model's training buffers). Default the language model's maxBatch. */
  maxBatch?: number;
  /** Longest prompt + image + answer (sizes them). Default min(positions, 256). */
  maxSeqLen?: number;
}

/** A prompt laid out for the language model: ids with the image slot, labels on the answer. */
export interface LaidOut {
  /** Position of the image slot's first row. */
  start: number;
  ids: number[];
  labels: number[];
}

/** `prefix · slot(M) · suffix · answer`, labels −100 except on the answer. */
export function layOut(
  prefix: ArrayLike<number>,
  M: number,
  suffix: ArrayLike<number>,
  answer: ArrayLike<number>,
): LaidOut {
  const ids = [...Array.from(prefix), ...new Array<number>(M).fill(0), ...Array.from(suffix), ...Array.from(answer)];
  const labels = ids.map((id, t) => (t >= ids.length - answer.length ? id : -100));
  return { start: prefix.length, ids, labels };
}

/** Right-pad rows to one length (id 0, label −100). */
export function padRows(rows: LaidOut[]): LaidOut[] {
  const T = Math.max(...rows.map((r) => r.ids.length));
  return rows.map((r) => ({
    start: r.start,
    ids: [...r.ids, ...new Array<number>(T - r.ids.length).fill(0)],
    labels: [...r.labels, ...new Array<number>(T - r.labels.length).fill(-100)],
  }));
}

/** Check an example's shape (the ids are checked by the prompt and the language model). */
export function checkExample(ex: VLMExample, b: number, what: string): Tensor {
  if (ex === null || typeof ex !== "object")
    throw new InputError(`${what}: example ${b} must be { pixelValues, question, answerIds }`);
  const a = ex.answerIds;
  if (a === null || typeof a !== "object" || typeof a.length !== "number" || a.length === 0)
    throw new InputError(`${what}: example ${b}: answerIds must be a non-empty array of token ids`);
  const px = ex.pixelValues;
  if (!(px instanceof Tensor)) throw new InputError(`${what}: example ${b}: pixelValues must be a Tensor`);
  if (px.ndim === 3) return px.reshape([1, ...px.shape]);
  if (px.ndim !== 4 || px.shape[0] !== 1)
    throw new ShapeError(
      `${what}: example ${b}: pixelValues must be [1, C, H, W] or [C, H, W], got [${px.shape.join(", ")}]`,
    );
  return px;
}

/** The language model's batch: the laid-out rows with each image's embeddings in its slot. */
export function lmBatch(rows: LaidOut[], embeds: Float32Array, rowFloats: number): LMExample[] {
  return rows.map((r, b) => ({
    inputIds: r.ids,
    labels: r.labels,
    inputsEmbeds: { start: r.start, data: embeds.subarray(b * rowFloats, (b + 1) * rowFloats) },
  }));
}

export type { BatchResult };
