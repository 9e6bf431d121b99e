/**
 * Word2Vec training (Mikolov et al. 2013, "Distributed Representations of Words and Phrases";
 * the algorithm of word2vec.c): skip-gram or CBOW with negative sampling, sub-sampling of frequent
 * words, a randomly shrunk window and a linearly decaying learning rate. The inner updates run in
 * the core kernels `w2vSgns` / `w2vCbow` (wasm SIMD after `init()`, otherwise the TS reference).
 *
 * Deterministic for a seed: one seeded PRNG (mulberry32) drives initialisation, sub-sampling,
 * window sizes and negatives in a fixed order on a single thread. The same seed gives the same
 * vectors on the same backend; the wasm (f32) and reference (f64) backends may differ in the last
 * bits, which then grow over training.
 *
 * @example
 * ```ts
 * await init();
 * const { vectors } = await Word2Vec.train(sentences, {
 *   dim: 100, window: 5, negative: 5, epochs: 5, seed: 1,
 *   onProgress: (p) => console.log(p.wordsPerSec, p.loss, p.alpha),
 *   signal: AbortSignal.timeout(60_000),
 * });
 * vectors.mostSimilar("king");
 * writeFileSync("vectors.bin", vectors.toBinary());
 * ```
 */
import {
  AbortError,
  createRuntime,
  InputError,
  mulberry32,
  type Runtime,
  releaseRuntime,
  WASM32_MAX_BYTES,
  WasmError,
} from "@wasmformer/core";
import { WordVectors } from "./word-vectors.js";

/** A sentence: tokens, or a string split on whitespace. */
export type Sentence = string | readonly string[];
/** A corpus: re-iterable sentences (an array), or a function giving a fresh (async) iterable per pass. */
export type Corpus = Iterable<Sentence> | (() => Iterable<Sentence> | AsyncIterable<Sentence>);

export interface Word2VecProgress {
  epoch: number;
  epochs: number;
  /** Words (after min-count filtering, before sub-sampling) processed so far, over all epochs. */
  wordsProcessed: number;
  totalWords: number;
  /** Fraction done, 0..1. */
  progress: number;
  /** Training words per second since the start. */
  wordsPerSec: number;
  /** Mean negative-sampling loss per example over the kernel batches since the previous report. */
  loss: number;
  /** Current learning rate. */
  alpha: number;
}

export interface Word2VecOptions {
  /** `"skipgram"` (default) or `"cbow"`. */
  model?: "skipgram" | "cbow";
  /** Vector size (default 100). */
  dim?: number;
  /** Maximum distance between the centre and a context word (default 5). */
  window?: number;
  /** Negative samples per example (default 5). */
  negative?: number;
  /** Drop words seen fewer times (default 5). */
  minCount?: number;
  /** Keep at most this many words (most frequent first). */
  maxVocab?: number;
  /** Sub-sampling threshold (default 1e-3; 0 disables). */
  sample?: number;
  /** Initial learning rate (default 0.025 for skip-gram, 0.05 for CBOW). */
  alpha?: number;
  /** Final learning rate (default alpha · 1e-4). */
  minAlpha?: number;
  epochs?: number;
  /** CBOW: average the context vectors (default true) or sum them. */
  cbowMean?: boolean;
  seed?: number;
  /** Split string sentences into tokens (default: on whitespace). */
  tokenize?: (s: string) => string[];
  onProgress?: (p: Word2VecProgress) => void;
  /** Report every this many milliseconds (default 500). */
  progressIntervalMs?: number;
  /** Cancels training (rejects with `AbortError`). */
  signal?: AbortSignal;
  runtime?: Runtime;
}

export interface Word2VecResult {
  vectors: WordVectors;
  /** Vocabulary counts, in vector order. */
  counts: number[];
  /** Mean loss per example of each epoch. */
  epochLoss: number[];
  /** Training words per second over the whole run. */
  wordsPerSec: number;
}

/** Walker's alias table for O(1) sampling of the unigram^0.75 distribution. */
function aliasTable(weights: Float64Array): { prob: Float64Array; alias: Int32Array } {
  const n = weights.length;
  let sum = 0;
  for (const w of weights) sum += w;
  const prob = new Float64Array(n);
  const alias = new Int32Array(n);
  const scaled = Float64Array.from(weights, (w) => (w * n) / sum);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < n; i++) (scaled[i] < 1 ? small : large).push(i);
  while (small.length && large.length) {
    const s = small.pop()!;
    const l = large.pop()!;
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    (scaled[l] < 1 ? small : large).push(l);
  }
  for (const i of [...small, ...large]) {
    prob[i] = 1;
    alias[i] = i;
  }
  return { prob, alias };
}

/** A macrotask turn of the event loop (timers, I/O and rendering run): `setImmediate` in Node, a message elsewhere. */
const yieldToLoop: () => Promise<void> =
  typeof setImmediate === "function"
    ? () => new Promise<void>((r) => setImmediate(r))
    : typeof MessageChannel === "function"
      ? () =>
          new Promise<void>((r) => {
            const ch = new MessageChannel();
            ch.port1.onmessage = () => {
              ch.port1.close();
              r();
            };
            ch.port2.postMessage(0);
          })
      : () => new Promise<void>((r) => setTimeout(r, 0));

/** Most epochs accepted: `epochLoss` keeps one number per epoch, and more passes than this are a mistake. */
export const WORD2VEC_MAX_EPOCHS = 1_000_000;
/** Words of work (counted, mapped, sub-sampled or trained) between two looks at the clock. */
const CHECK_WORDS = 256;
/** Longest stretch of work between two turns of the event loop (and checks of the signal), ms. */
const SLICE_MS = 10;

/** The sentences of one pass over the corpus (strings are split by the caller, a long one in slices). */
async function* sentences(corpus: Corpus): AsyncGenerator<Sentence> {
  const src = typeof corpus === "function" ? corpus() : corpus;
  let i = 0;
  for await (const s of src as AsyncIterable<Sentence>) {
    if (typeof s !== "string" && !Array.isArray(s))
      throw new InputError(`corpus sentence ${i} is not a string or a list of tokens`);
    yield s;
    i++;
  }
}

export const Word2Vec = {
  /**
   * Train word vectors on a corpus; resolves to the vectors, counts and per-epoch loss.
   *
   * The work runs in slices of about 10 ms, however the corpus is cut into sentences (one long
   * text included): between slices the event loop turns and `signal` is checked. When no
   * `runtime` is given, the returned vectors own the runtime made for training (`dispose()` it).
   */
  async train(corpus: Corpus, opts: Word2VecOptions = {}): Promise<Word2VecResult> {
    const sg = (opts.model ?? "skipgram") === "skipgram";
    if (opts.model !== undefined && opts.model !== "skipgram" && opts.model !== "cbow") {
      throw new InputError(`model must be "skipgram" or "cbow", got ${JSON.stringify(opts.model)}`);
    }
    const dim = opts.dim ?? 100;
    const window = opts.window ?? 5;
    const negative = opts.negative ?? 5;
    const minCount = opts.minCount ?? 5;
    const sample = opts.sample ?? 1e-3;
    const alpha0 = opts.alpha ?? (sg ? 0.025 : 0.05);
    const minAlpha = opts.minAlpha ?? alpha0 * 1e-4;
    const epochs = opts.epochs ?? 5;
    const seed = opts.seed ?? 1;
    const tokenize = opts.tokenize;
    const interval = opts.progressIntervalMs ?? 500;
    const posInt = (v: number, name: string, min = 1) => {
      if (!Number.isInteger(v) || v < min) throw new InputError(`${name} must be an integer >= ${min}, got ${v}`);
    };
    posInt(dim, "dim");
    posInt(window, "window");
    posInt(negative, "negative", 0);
    posInt(minCount, "minCount");
    posInt(epochs, "epochs");
    if (opts.maxVocab !== undefined) posInt(opts.maxVocab, "maxVocab");
    if (epochs > WORD2VEC_MAX_EPOCHS)
      throw new InputError(`epochs must be at most ${WORD2VEC_MAX_EPOCHS}, got ${epochs}`);
    if (!(alpha0 > 0) || !(minAlpha >= 0) || !(sample >= 0))
      throw new InputError("alpha must be > 0, minAlpha and sample >= 0");
    const checkSignal = () => {
      if (opts.signal?.aborted) throw new AbortError("Word2Vec training aborted");
    };
    checkSignal();

    // ---- cooperative scheduling: each unit of work (a word counted, mapped, sub-sampled or
    // trained; a sentence) counts down; every CHECK_WORDS units look at the clock, and after
    // SLICE_MS of work give the event loop a turn and honour the signal.
    let untilCheck = CHECK_WORDS;
    let lastYield = performance.now();
    let onCheck = () => {}; // progress reports, once training runs
    const checkpoint = async () => {
      untilCheck = CHECK_WORDS;
      onCheck();
      if (performance.now() - lastYield < SLICE_MS) return;
      await yieldToLoop();
      lastYield = performance.now();
      checkSignal();
    };

    /** The tokens of a sentence: `opts.tokenize`, or whitespace splitting (in slices: one text may be a whole book). */
    const split = async (s: Sentence, i: number): Promise<readonly string[]> => {
      if (typeof s !== "string") return s;
      if (tokenize) {
        const t = tokenize(s);
        if (!Array.isArray(t))
          throw new InputError(`tokenize did not return a list of tokens for corpus sentence ${i}`);
        return t;
      }
      const out: string[] = [];
      const re = /\S+/g;
      for (let m = re.exec(s); m !== null; m = re.exec(s)) {
        out.push(m[0]);
        if (--untilCheck <= 0) await checkpoint();
      }
      return out;
    };

    // ---- vocabulary (pass 1): counts, min-count filter, most frequent first (ties: first seen)
    const counts = new Map<string, number>();
    let scanned = 0;
    for await (const raw of sentences(corpus)) {
      const s = await split(raw, scanned);
      for (let t = 0; t < s.length; t++) {
        const w = s[t];
        if (typeof w !== "string") throw new InputError(`corpus sentence ${scanned}, token ${t} is not a string`);
        counts.set(w, (counts.get(w) ?? 0) + 1);
        if (--untilCheck <= 0) await checkpoint();
      }
      scanned++;
      if (--untilCheck <= 0) await checkpoint();
    }
    let vocabList = [...counts.entries()].filter(([, c]) => c >= minCount);
    vocabList.sort((a, b) => b[1] - a[1]);
    if (opts.maxVocab !== undefined) vocabList = vocabList.slice(0, opts.maxVocab);
    const V = vocabList.length;
    if (V === 0) throw new InputError(`no word occurs at least minCount=${minCount} times`);
    const words = vocabList.map((e) => e[0]);
    const cnt = vocabList.map((e) => e[1]);
    const id = new Map(words.map((w, i) => [w, i]));
    let trainWords = 0;
    for (const c of cnt) trainWords += c;

    // ---- sizes, checked before anything is allocated
    const nT = 1 + negative;
    const B = 4096; // examples per kernel call
    const bufferBytes = 4 * (2 * V * dim + 2 * dim + B + B * nT + B * 2 * window + B + 1);
    if (bufferBytes > WASM32_MAX_BYTES) {
      throw new InputError(
        `${V} words × dim ${dim} (window ${window}, negative ${negative}) need ${(bufferBytes / 2 ** 30).toFixed(1)} GiB ` +
          "of training buffers, more than the 4 GiB of wasm32 memory: lower dim, window, negative or maxVocab",
      );
    }
    const total = epochs * trainWords;
    if (!Number.isSafeInteger(total))
      throw new InputError(`epochs × corpus words = ${epochs} × ${trainWords} is too many words to count exactly`);

    // word2vec.c sub-sampling: keep with probability (sqrt(c / (s·T)) + 1) · (s·T) / c
    const keep = Float64Array.from(cnt, (c) =>
      sample > 0 ? (Math.sqrt(c / (sample * trainWords)) + 1) * ((sample * trainWords) / c) : 1,
    );
    const { prob, alias } = aliasTable(Float64Array.from(cnt, (c) => c ** 0.75));

    // ---- buffers in the kernel heap (allocated once; views re-taken after allocation)
    const own = opts.runtime === undefined;
    const rt = opts.runtime ?? createRuntime();
    const h = rt.heap;
    const mark = h.mark();
    let trained: Float32Array;
    const t0 = performance.now();
    let done = 0;
    const epochLoss: number[] = [];
    try {
      const syn0 = h.allocF32(V * dim);
      const syn1 = h.allocF32(V * dim);
      const work = h.allocF32(2 * dim);
      const inWords = h.allocF32(B);
      const targets = h.allocF32(B * nT);
      const ctx = h.allocF32(B * 2 * window);
      const ctxOff = h.allocF32(B + 1);
      const r = mulberry32(seed);
      // word2vec.c init (syn1neg starts at 0), in slices: a large vocabulary takes seconds
      for (let i0 = 0; i0 < V * dim; i0 += 65536) {
        const s0 = h.f32(syn0, V * dim);
        const end = Math.min(V * dim, i0 + 65536);
        for (let i = i0; i < end; i++) s0[i] = (r() - 0.5) / dim;
        await checkpoint();
      }
      const I = () => new Int32Array(h.buffer());
      const sampleNeg = (positive: number): number => {
        for (let attempt = 0; attempt < 16; attempt++) {
          const i = Math.floor(r() * V);
          const w = r() < prob[i] ? i : alias[i];
          if (w !== positive || V === 1) return w;
        }
        return (positive + 1) % V;
      };

      // ---- training (passes 2..)
      let lastReport = t0;
      let lastLoss = 0;
      let lossAcc = 0;
      let lossN = 0;
      let alpha = alpha0;
      let nEx = 0;
      let nCtx = 0;
      let epochAcc = 0;
      let epochN = 0;
      let i32 = I();
      const flush = () => {
        if (nEx === 0) return;
        // linear decay over all training words (word2vec.c updates it every 10k words; here per batch)
        alpha = Math.max(minAlpha, alpha0 * (1 - done / (total + 1)));
        const loss = sg
          ? rt.k.w2vSgns(syn0, syn1, V, dim, inWords, targets, nEx, nT, alpha, work)
          : rt.k.w2vCbow(
              syn0,
              syn1,
              V,
              dim,
              ctx,
              ctxOff,
              targets,
              nEx,
              nT,
              alpha,
              opts.cbowMean === false ? 0 : 1,
              work,
            );
        if (Number.isNaN(loss)) throw new WasmError("word2vec kernel rejected its ids (internal error)");
        lossAcc += loss;
        lossN += nEx;
        epochAcc += loss;
        epochN += nEx;
        nEx = 0;
        nCtx = 0;
        i32 = I(); // (memory does not grow during training; re-taking the view is cheap insurance)
      };
      const report = (epoch: number, force = false) => {
        const now = performance.now();
        if (!opts.onProgress || (!force && now - lastReport < interval)) return;
        lastReport = now;
        opts.onProgress({
          epoch,
          epochs,
          wordsProcessed: done,
          totalWords: total,
          progress: done / total,
          wordsPerSec: done / Math.max(1e-9, (now - t0) / 1000),
          loss: (lastLoss = lossN ? lossAcc / lossN : lastLoss), // batches are flushed every B examples
          alpha,
        });
        lossAcc = 0;
        lossN = 0;
      };
      // in-memory corpora are mapped to ids once; streamed ones are mapped on every pass
      const toIds = async (s: readonly string[]): Promise<Int32Array> => {
        const out = new Int32Array(s.length);
        let n = 0;
        for (let t = 0; t < s.length; t++) {
          const i = id.get(s[t]);
          if (i !== undefined) out[n++] = i;
          if (--untilCheck <= 0) await checkpoint();
        }
        return out.subarray(0, n);
      };
      let cached: Int32Array[] | null = null;
      if (Array.isArray(corpus)) {
        cached = [];
        let k = 0;
        for await (const s of sentences(corpus)) {
          cached.push(await toIds(await split(s, k++)));
          if (--untilCheck <= 0) await checkpoint();
        }
      }
      let sent = new Int32Array(1024);
      const IW = inWords >> 2;
      const TG = targets >> 2;
      const CX = ctx >> 2;
      const CO = ctxOff >> 2;
      /** Queue the examples of the word at `pos` of the sub-sampled sentence `sent[0, len)`. */
      const queue = (pos: number, len: number) => {
        const b = Math.floor(r() * window); // reduced window: word2vec.c's `b = next_random % window`
        const lo = Math.max(0, pos - window + b);
        const hi = Math.min(len - 1, pos + window - b);
        const centre = sent[pos];
        if (sg) {
          for (let c = lo; c <= hi; c++) {
            if (c === pos) continue;
            if (nEx === B) flush();
            i32[IW + nEx] = sent[c];
            const o = TG + nEx * nT;
            i32[o] = centre;
            for (let d = 1; d < nT; d++) i32[o + d] = sampleNeg(centre);
            nEx++;
          }
        } else {
          if (hi === lo) return; // no context
          if (nEx === B || nCtx + 2 * window > B * 2 * window) flush();
          if (nEx === 0) i32[CO] = 0;
          for (let c = lo; c <= hi; c++) if (c !== pos) i32[CX + nCtx++] = sent[c];
          i32[CO + nEx + 1] = nCtx;
          const o = TG + nEx * nT;
          i32[o] = centre;
          for (let d = 1; d < nT; d++) i32[o + d] = sampleNeg(centre);
          nEx++;
        }
      };
      /** Sub-sample `ids[from, to)` onto the end of `sent[0, len)`; returns the new length. */
      const subsample = (ids: Int32Array, from: number, to: number, len: number): number => {
        for (let t = from; t < to; t++) {
          const i = ids[t];
          if (keep[i] < 1 && keep[i] < r()) continue;
          sent[len++] = i;
        }
        done += to - from;
        return len;
      };
      /** One sentence of ids: sub-sample, then queue its examples (flushed to the kernel when B are queued). */
      const trainIds = async (ids: Int32Array) => {
        if (ids.length > sent.length) sent = new Int32Array(ids.length);
        let len = 0;
        for (let t = 0; t < ids.length; t += CHECK_WORDS) {
          const end = Math.min(ids.length, t + CHECK_WORDS);
          len = subsample(ids, t, end, len);
          if ((untilCheck -= end - t) <= 0) await checkpoint();
        }
        for (let pos = 0; pos < len; pos += CHECK_WORDS) {
          const end = Math.min(len, pos + CHECK_WORDS);
          for (let p = pos; p < end; p++) queue(p, len);
          if ((untilCheck -= end - pos) <= 0) await checkpoint();
        }
        if (--untilCheck <= 0) await checkpoint();
      };
      let epoch = 0;
      onCheck = () => report(epoch);
      for (; epoch < epochs; epoch++) {
        epochAcc = 0;
        epochN = 0;
        if (cached) for (const ids of cached) await trainIds(ids);
        else {
          let k = 0;
          for await (const s of sentences(corpus)) await trainIds(await toIds(await split(s, k++)));
        }
        flush();
        epochLoss.push(epochN ? epochAcc / epochN : 0);
        report(epoch, true);
      }
      trained = h.f32(syn0, V * dim).slice();
    } finally {
      h.release(mark); // the training buffers
      if (own) releaseRuntime(rt); // emptied; the vectors' own runtime (below) reuses its memory at once
    }
    const seconds = (performance.now() - t0) / 1000;
    const vectors = new WordVectors(words, trained, dim, own ? undefined : rt);
    return { vectors, counts: cnt, epochLoss, wordsPerSec: done / Math.max(1e-9, seconds) };
  },
};
