/**
 * Word embeddings in the worker: Word2Vec training (@wasmformer/text, core's w2v kernels) on the
 * built-in corpus or the user's text, nearest neighbours, analogies, and a 2-D PCA projection.
 */
import { ConfigError, InputError } from "@wasmformer/core";
import { Word2Vec, type Word2VecProgress, WordVectors } from "@wasmformer/text";
import { builtinCorpus } from "./corpus.js";
import { type FolderSource, type Latest, type ProgressFn, readFolder } from "./folder.js";
import { loadSlots } from "./slots.js";

export interface TrainRequest {
  /** "builtin" or the user's own text (one sentence per line) */
  corpus: "builtin" | string;
  sentences: number;
  model: "skipgram" | "cbow";
  dim: number;
  window: number;
  negative: number;
  epochs: number;
  minCount: number;
  seed: number;
}

export interface TrainResult {
  vocab: number;
  words: number;
  epochLoss: number[];
  wordsPerSec: number;
  ms: number;
}

export type Neighbours = { word: string; similarity: number }[];

let vectors: WordVectors | undefined;
let training: AbortController | undefined;

/** Stop a running training (it rejects with an AbortError). */
export function stopTraining(): boolean {
  if (!training) return false;
  training.abort(new Error("stopped by the user"));
  return true;
}

/**
 * Top-2 principal components of the rows of `x [n, d]` (power iteration with deflation on the
 * covariance), and the rows projected on them.
 */
export function pca2(x: Float32Array, n: number, d: number): { coords: Float32Array; explained: [number, number] } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  const cov = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      const va = x[i * d + a] - mean[a];
      for (let b = a; b < d; b++) cov[a * d + b] += (va * (x[i * d + b] - mean[b])) / Math.max(1, n - 1);
    }
  }
  let trace = 0;
  for (let a = 0; a < d; a++) {
    trace += cov[a * d + a];
    for (let b = 0; b < a; b++) cov[a * d + b] = cov[b * d + a];
  }
  const comps: Float64Array[] = [];
  const vals: number[] = [];
  for (let c = 0; c < 2; c++) {
    let v = Float64Array.from({ length: d }, (_, j) => Math.cos(j + c + 1));
    let lambda = 0;
    for (let it = 0; it < 300; it++) {
      const w = new Float64Array(d);
      for (let a = 0; a < d; a++) {
        let s = 0;
        for (let b = 0; b < d; b++) s += cov[a * d + b] * v[b];
        w[a] = s;
      }
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      for (let a = 0; a < d; a++) w[a] /= norm;
      const delta = Math.abs(norm - lambda);
      v = w;
      lambda = norm;
      if (delta < 1e-10 * Math.max(1, lambda)) break;
    }
    comps.push(v);
    vals.push(lambda);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b] -= lambda * v[a] * v[b];
  }
  const coords = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 2; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j] - mean[j]) * comps[c][j];
      coords[i * 2 + c] = s;
    }
  }
  return { coords, explained: [trace > 0 ? vals[0] / trace : 0, trace > 0 ? vals[1] / trace : 0] };
}

export interface Projection {
  /** `[n, 2]` PCA coordinates of `words` */
  coords: Float32Array;
  words: string[];
  explained: [number, number];
}

/**
 * 2-D PCA of some of the vectors (fitted on those words only), or of all of them when `words` is
 * empty. Unknown words are skipped; fewer than three known words is an error.
 */
export function project(words: readonly string[]): Projection {
  const v = need();
  const ws = words.length
    ? [...new Set(words.map((w) => w.trim().toLowerCase()).filter((w) => v.has(w)))]
    : [...v.words];
  if (ws.length < 3) throw new InputError("at least three words of the vocabulary are needed for a 2-D projection");
  const x = new Float32Array(ws.length * v.dim);
  ws.forEach((w, i) => {
    x.set(v.get(w) as Float32Array, i * v.dim);
  });
  const { coords, explained } = pca2(x, ws.length, v.dim);
  return { coords, words: ws, explained };
}

export async function trainWord2Vec(
  req: TrainRequest,
  onProgress: (p: Word2VecProgress) => void,
): Promise<TrainResult> {
  vectors = undefined;
  const t0 = performance.now();
  let corpus: string[][];
  if (req.corpus === "builtin") {
    if (!Number.isInteger(req.sentences) || req.sentences < 10)
      throw new InputError("sentences must be an integer ≥ 10");
    corpus = builtinCorpus(req.sentences, req.seed);
  } else {
    corpus = req.corpus
      .split("\n")
      .map((l) => l.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [])
      .filter((s) => s.length > 1);
    if (corpus.length === 0) throw new InputError("the corpus has no sentence of two words or more");
  }
  const ctl = new AbortController();
  training = ctl;
  const r = await Word2Vec.train(corpus, {
    signal: ctl.signal,
    model: req.model,
    dim: req.dim,
    window: req.window,
    negative: req.negative,
    epochs: req.epochs,
    minCount: req.minCount,
    seed: req.seed,
    sample: 0,
    progressIntervalMs: 250,
    onProgress,
  }).finally(() => {
    if (training === ctl) training = undefined;
  });
  vectors = r.vectors;
  return {
    vocab: r.vectors.size,
    words: corpus.reduce((a, s) => a + s.length, 0),
    epochLoss: r.epochLoss,
    wordsPerSec: r.wordsPerSec,
    ms: performance.now() - t0,
  };
}

export interface VectorsInfo {
  vocab: number;
  dim: number;
  file: string;
  ms: number;
}

/** Load word vectors from a folder: `vectors.bin` (word2vec binary) or `vectors.txt` (text). */
export async function loadWordVectors(
  src: FolderSource,
  onProgress: ProgressFn,
  latest: Latest = loadSlots.vectors.begin(),
): Promise<VectorsInfo> {
  const t0 = performance.now();
  vectors = undefined;
  const files = await readFolder(src, [], ["vectors.bin", "vectors.txt"], onProgress);
  const file = files["vectors.bin"] ? "vectors.bin" : files["vectors.txt"] ? "vectors.txt" : undefined;
  if (!file) throw new ConfigError(`vectors.bin or vectors.txt not found${src.kind === "url" ? ` at ${src.url}` : ""}`);
  const v = WordVectors.load(new Uint8Array(await files[file].arrayBuffer()));
  vectors = latest(v);
  return { vocab: v.size, dim: v.dim, file, ms: performance.now() - t0 };
}

function need(): WordVectors {
  if (!vectors) throw new ConfigError("no vectors yet: train Word2Vec first");
  return vectors;
}

export function neighbours(word: string, k: number): Neighbours {
  const v = need();
  const w = word.trim().toLowerCase();
  if (!v.has(w)) throw new InputError(`"${w}" is not in the vocabulary`);
  return v.mostSimilar(w, k);
}

/** a : b :: c : ? */
export function analogy(a: string, b: string, c: string, k: number): Neighbours {
  const v = need();
  const ws = [a, b, c].map((x) => x.trim().toLowerCase());
  const missing = ws.filter((x) => !v.has(x));
  if (missing.length) throw new InputError(`not in the vocabulary: ${missing.join(", ")}`);
  return v.analogy(ws[0], ws[1], ws[2], k);
}
