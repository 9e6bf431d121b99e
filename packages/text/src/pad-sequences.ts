/**
 * `padSequences`: Keras `pad_sequences` (keras-preprocessing `keras_preprocessing/sequence.py`,
 * identical to keras `keras/src/utils/sequence_utils.py`) for 1-D sequences of numbers; see
 * `../shared/fixtures/FORMAT.md` §6.2.
 *
 * @example
 * ```ts
 * padSequences([[1, 2, 3, 4], [1, 2, 3], [1]], { maxlen: 4 }).toArray();
 * // [[1, 2, 3, 4], [0, 1, 2, 3], [0, 0, 0, 1]]   (Int32Array-backed Tensor [3, 4])
 * ```
 */
import { InputError, Tensor } from "@wasmformer/core";
import { allocMatrix } from "./matrix.js";

export interface PadSequencesOptions {
  /** Output length; default (null/undefined): the longest sequence (0 when all are empty). */
  maxlen?: number | null;
  /** `"int32"` (default; values truncated toward zero) or `"float32"` (nearest float32). */
  dtype?: "int32" | "float32";
  /** Where the padding goes: `"pre"` (default) or `"post"`. */
  padding?: "pre" | "post";
  /** Which end of a too-long sequence is cut: `"pre"` (default, keep the last maxlen) or `"post"`. */
  truncating?: "pre" | "post";
  /** Fill value (default 0), cast to `dtype`. */
  value?: number;
}

function castInt32(v: number, what: string): number {
  const t = Math.trunc(v);
  if (!Number.isFinite(v) || t < -2147483648 || t > 2147483647) {
    throw new InputError(`${what} = ${v} cannot be cast to int32`);
  }
  return t;
}

/** Pad (and truncate) sequences to one length: an int32 or f32 tensor `[n, maxlen]`. */
export function padSequences(
  sequences: readonly (ArrayLike<number> & Iterable<number>)[],
  opts: PadSequencesOptions = {},
): Tensor<"i32"> | Tensor<"f32"> {
  const { padding = "pre", truncating = "pre", dtype = "int32", value = 0 } = opts;
  if (padding !== "pre" && padding !== "post") {
    throw new InputError(`padding must be "pre" or "post", got ${JSON.stringify(padding)}`);
  }
  if (truncating !== "pre" && truncating !== "post") {
    throw new InputError(`truncating must be "pre" or "post", got ${JSON.stringify(truncating)}`);
  }
  if (dtype !== "int32" && dtype !== "float32") {
    throw new InputError(`dtype must be "int32" or "float32", got ${JSON.stringify(dtype)}`);
  }
  if (typeof value !== "number" || Number.isNaN(value))
    throw new InputError(`value must be a number, got ${String(value)}`);
  if (
    sequences == null ||
    typeof (sequences as Iterable<unknown>)[Symbol.iterator] !== "function" ||
    typeof sequences === "string"
  ) {
    throw new InputError("sequences must be a list of sequences");
  }
  const seqs = [...sequences];
  seqs.forEach((s, i) => {
    if (s == null || typeof s === "string" || (!Array.isArray(s) && !ArrayBuffer.isView(s))) {
      throw new InputError(`sequences[${i}] is not a list of numbers`);
    }
    for (let t = 0; t < s.length; t++) {
      if (typeof s[t] !== "number" || Number.isNaN(s[t]))
        throw new InputError(`sequences[${i}][${t}] = ${String(s[t])} is not a number`);
    }
  });
  let maxlen: number;
  if (opts.maxlen === null || opts.maxlen === undefined) {
    maxlen = 0;
    for (const s of seqs) maxlen = Math.max(maxlen, s.length);
  } else {
    if (!Number.isInteger(opts.maxlen) || opts.maxlen < 0) {
      throw new InputError(`maxlen must be a non-negative integer or null, got ${opts.maxlen}`);
    }
    maxlen = opts.maxlen;
  }
  const n = seqs.length;
  const isInt = dtype === "int32";
  const out = allocMatrix(isInt ? "i32" : "f32", n, maxlen, `padSequences (${n} sequences, maxlen ${maxlen})`);
  out.fill(isInt ? castInt32(value, "value") : value);
  seqs.forEach((s, i) => {
    const len = Math.min(s.length, maxlen);
    if (len === 0) return;
    const from = truncating === "pre" ? s.length - len : 0; // t = s[from : from + len]
    const at = padding === "post" ? 0 : maxlen - len;
    for (let t = 0; t < len; t++) {
      const v = s[from + t];
      out[i * maxlen + at + t] = isInt ? castInt32(v, `sequences[${i}][${from + t}]`) : v;
    }
  });
  return isInt
    ? new Tensor(out as Int32Array, [n, maxlen], "i32")
    : new Tensor(out as Float32Array, [n, maxlen], "f32");
}
