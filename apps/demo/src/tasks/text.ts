/**
 * Text preprocessing (worker side): the Keras `Tokenizer` and `padSequences` from @wasmformer/text,
 * run on the lecture's examples (or whatever the page sends).
 */
import { type MatrixMode, padSequences, Tokenizer } from "@wasmformer/text";

export interface TextRequest {
  /** texts to fit the first tokenizer on (lecture: "I love Algeria", …) */
  fitTexts: string[];
  /** texts to encode with it */
  encodeTexts: string[];
  /** sequences to decode back to texts */
  decodeSequences: number[][];
  /** out-of-vocabulary token, or null */
  oovToken: string | null;
  /** keep only indices < numWords (null: no limit) */
  numWords: number | null;
  /** texts for the four matrix modes (fit on themselves, as in the lecture) */
  matrixTexts: string[];
  /** sequences to pad (lecture: [[1, 2, 3, 4], [1, 2, 3], [1]]) */
  padSequences: number[][];
  /** padding options */
  maxlen: number | null;
  truncating: "pre" | "post";
  value: number;
}

export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

export interface TextResult {
  wordIndex: [string, number][];
  wordCounts: [string, number][];
  documentCount: number;
  sequences: number[][];
  decoded: string[];
  /** index → word for the matrix tokenizer (column j is word j; column 0 is reserved) */
  matrixVocab: string[];
  matrices: Record<MatrixMode, Matrix>;
  padded: { pre: Matrix; post: Matrix };
  /** per-step timings (ms, in the worker) */
  ms: number;
}

export const MODES: readonly MatrixMode[] = ["binary", "count", "freq", "tfidf"];

function toMatrix(t: { shape: readonly number[]; data: ArrayLike<number> }): Matrix {
  const [rows, cols] = t.shape;
  return { rows, cols, data: Float32Array.from(t.data) };
}

export function preprocess(req: TextRequest): TextResult {
  const t0 = performance.now();
  const tok = new Tokenizer({ oovToken: req.oovToken, numWords: req.numWords });
  tok.fitOnTexts(req.fitTexts);
  const sequences = tok.textsToSequences(req.encodeTexts);
  const decoded = tok.sequencesToTexts(req.decodeSequences);

  const mt = new Tokenizer();
  mt.fitOnTexts(req.matrixTexts);
  const matrixVocab = ["(0)"];
  for (const [w, i] of mt.wordIndex) matrixVocab[i] = w;
  const matrices = {} as Record<MatrixMode, Matrix>;
  for (const mode of MODES) matrices[mode] = toMatrix(mt.textsToMatrix(req.matrixTexts, mode));

  const opts = { maxlen: req.maxlen, truncating: req.truncating, value: req.value };
  const pre = toMatrix(padSequences(req.padSequences, { ...opts, padding: "pre" }));
  const post = toMatrix(padSequences(req.padSequences, { ...opts, padding: "post" }));
  return {
    wordIndex: [...tok.wordIndex],
    wordCounts: [...tok.wordCounts],
    documentCount: tok.documentCount,
    sequences,
    decoded,
    matrixVocab,
    matrices,
    padded: { pre, post },
    ms: performance.now() - t0,
  };
}

/** The buffers of a result, for `transfer()`. */
export function textTransferables(r: TextResult): ArrayBuffer[] {
  return [
    ...MODES.map((m) => r.matrices[m].data.buffer),
    r.padded.pre.data.buffer,
    r.padded.post.data.buffer,
  ] as ArrayBuffer[];
}
