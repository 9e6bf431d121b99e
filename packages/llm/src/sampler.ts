/**
 * The sampler (llama2.c `// The Sampler`, HF `generation/logits_process.py`): a seeded PRNG,
 * repetition penalty, temperature, top-k, top-p (nucleus) and greedy choice over one row of logits.
 *
 * Order, as in HF `generate`: repetition penalty (a logits processor) → temperature → top-k →
 * top-p (warpers) → sample from the renormalised distribution.
 */
import { InputError } from "@wasmformer/core";

// ---------------------------------------------------------------------------------------------
// PRNG

/**
 * xoshiro128** (Blackman & Vigna 2018), seeded through splitmix32: deterministic across engines,
 * 32-bit state words only.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new InputError(`seed must be a finite number, got ${seed}`);
    // splitmix32 over the seed's low and high 32 bits
    let x = (Math.trunc(seed) >>> 0) ^ Math.trunc(seed / 2 ** 32);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  random(): number {
    return this.nextU32() / 2 ** 32;
  }
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

// ---------------------------------------------------------------------------------------------
// options

export interface SamplingOptions {
  /** 0 (default) = greedy; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep the k most likely tokens (0 or absent = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent = all). */
  topP?: number;
  /** HF `repetition_penalty` (> 0; 1 = off): positive logits of already-present tokens are divided by it, negative ones multiplied. */
  repetitionPenalty?: number;
}

/** Validate sampling options (typed errors naming the option). */
export function checkSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0)
    throw new InputError(`temperature must be a number ≥ 0, got ${t}`);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new InputError(`topK must be an integer ≥ 0, got ${k}`);
  const p = o.topP ?? 1;
  if (typeof p !== "number" || !(p > 0 && p <= 1)) throw new InputError(`topP must be in (0, 1], got ${p}`);
  const r = o.repetitionPenalty ?? 1;
  if (typeof r !== "number" || !Number.isFinite(r) || r <= 0)
    throw new InputError(`repetitionPenalty must be a number > 0, got ${r}`);
}

// ---------------------------------------------------------------------------------------------
// processors

/** Index of the largest value (first on ties); NaN is never chosen unless all are NaN. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > bv) {
      bv = x[i];
      best = i;
    }
  }
  return best;
}

/** `log_softmax(logits)[id]`, computed in f64. */
export function logProbOf(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[id] - max - Math.log(sum);
}

/**
 * HF `RepetitionPenaltyLogitsProcessor`, in place: for each distinct token of `previous`, a positive
 * logit is divided by `penalty`, a negative one multiplied.
 */
export function applyRepetitionPenalty(logits: Float32Array, previous: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of previous) {
    if (seen.has(id) || id < 0 || id >= logits.length) continue;
    seen.add(id);
    const v = logits[id];
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/** The candidates sampling may pick, with their renormalised probabilities (descending). */
export interface Candidates {
  ids: Int32Array;
  probs: Float64Array;
}

/** w = exp(−d) with d = (max − logits) / T ≥ 0, in f64 (unnormalised), the largest finite d, and Σ w. */
function weights(
  logits: ArrayLike<number>,
  temp: number,
): { w: Float64Array; d: Float64Array; dMax: number; sum: number } {
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const w = new Float64Array(V);
  const d = new Float64Array(V);
  let sum = 0;
  let dMax = 0;
  for (let i = 0; i < V; i++) {
    const di = (max - logits[i]) / temp;
    d[i] = di;
    const e = Math.exp(-di);
    w[i] = e;
    sum += e;
    if (e > 0 && di > dMax) dMax = di;
  }
  return { w, d, dMax, sum };
}

/** `a` ranks before `b`: larger weight, then lower id. */
const before = (w: Float64Array, a: number, b: number) => w[a] > w[b] || (w[a] === w[b] && a < b);

/** The k best ids by `before`, best first: a size-k min-heap over one pass, O(V log k). */
function topKIds(w: Float64Array, k: number): number[] {
  const heap: number[] = []; // heap[0] = the worst kept id
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(w, heap[m], heap[l])) m = l;
      if (r < heap.length && before(w, heap[m], heap[r])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let id = 0; id < w.length; id++) {
    if (w[id] === 0 && heap.length >= k) continue;
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!before(w, heap[parent], heap[i])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (before(w, id, heap[0])) {
      heap[0] = id;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(w, a, b) ? -1 : 1));
}

/**
 * The nucleus over all tokens (HF `TopPLogitsWarper`): the fewest tokens, best first, whose weight
 * reaches `topP · sum`. Returned as a threshold: every id with weight > `w0`, plus the first
 * `ties` ids (lowest ids) with weight exactly `w0`.
 *
 * O(V): the weights are binned by −log w (the scaled logit gap to the max), the bin holding the
 * boundary is found from the bins' masses, and only that bin is sorted.
 */
function nucleus(
  { w, d, dMax, sum }: { w: Float64Array; d: Float64Array; dMax: number; sum: number },
  topP: number,
): { w0: number; ties: number } {
  const BINS = 4096;
  const span = Math.min(dMax, 64) || 1; // gaps beyond 64 (w < 1.6e-28) all land in the last bin
  const binOf = (i: number) => Math.min(BINS - 1, Math.floor((d[i] * BINS) / span));
  const mass = new Float64Array(BINS);
  const count = new Int32Array(BINS);
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    const b = binOf(i);
    mass[b] += w[i];
    count[b]++;
  }
  const target = topP * sum;
  let cum = 0;
  let b = 0;
  for (; b < BINS - 1; b++) {
    if (count[b] > 0 && cum + mass[b] >= target) break;
    cum += mass[b];
  }
  // the boundary bin: its ids best first, taken until the cumulative weight reaches the target
  const inBin: number[] = [];
  for (let i = 0; i < w.length; i++) if (w[i] !== 0 && binOf(i) === b) inBin.push(i);
  inBin.sort((x, y) => (before(w, x, y) ? -1 : 1));
  let n = 0;
  while (n < inBin.length) {
    cum += w[inBin[n]];
    n++;
    if (cum >= target) break;
  }
  if (n === 0) return { w0: Infinity, ties: 0 }; // unreachable: the best bin is never empty
  const w0 = w[inBin[n - 1]];
  let better = 0;
  for (let j = 0; j < n; j++) if (w[inBin[j]] > w0) better++;
  return { w0, ties: n - better };
}

/** Ids kept by a nucleus threshold, in id order. */
function nucleusIds(w: Float64Array, w0: number, ties: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < w.length; i++) {
    if (w[i] > w0) ids.push(i);
    else if (w[i] === w0 && ties > 0) {
      ids.push(i);
      ties--;
    }
  }
  return ids;
}

const options = (V: number, o: SamplingOptions) => ({
  temp: o.temperature && o.temperature > 0 ? o.temperature : 1,
  topK: o.topK && o.topK > 0 ? Math.min(o.topK, V) : V,
  topP: o.topP ?? 1,
});

/** Top-p over a best-first list (the top-k set): keeps the prefix whose share of the list's weight reaches p. */
function topPOfList(w: Float64Array, ids: number[], topP: number): number[] {
  if (topP >= 1) return ids;
  let mass = 0;
  for (const i of ids) mass += w[i];
  let cum = 0;
  let kept = 0;
  while (kept < ids.length) {
    cum += w[ids[kept]];
    kept++;
    if (cum >= topP * mass) break;
  }
  return ids.slice(0, kept);
}

/**
 * The filtered distribution of temperature → top-k → top-p over `logits` (not modified), sorted by
 * decreasing probability (lower id first on ties) and renormalised. (For inspection and tests;
 * `sampleToken` draws from the same distribution without sorting everything.)
 */
export function candidates(logits: ArrayLike<number>, o: SamplingOptions): Candidates {
  const V = logits.length;
  const { temp, topK, topP } = options(V, o);
  const ws = weights(logits, temp);
  const w = ws.w;
  let ids: number[];
  if (topK < V) ids = topPOfList(w, topKIds(w, topK), topP);
  else {
    const { w0, ties } = topP < 1 ? nucleus(ws, topP) : { w0: -1, ties: 0 };
    ids = nucleusIds(w, w0, ties).sort((a, b) => (before(w, a, b) ? -1 : 1));
  }
  let z = 0;
  for (const i of ids) z += w[i];
  return { ids: Int32Array.from(ids), probs: Float64Array.from(ids, (i) => w[i] / z) };
}

/** Inverse-CDF draw among `ids` (any order) with weights `w`. */
function draw(w: Float64Array, ids: ArrayLike<number>, rng: Rng): number {
  let z = 0;
  for (let j = 0; j < ids.length; j++) z += w[ids[j]];
  const u = rng.random() * z;
  let cum = 0;
  for (let j = 0; j < ids.length; j++) {
    cum += w[ids[j]];
    if (u < cum) return ids[j];
  }
  return ids[ids.length - 1]; // rounding: cum may end a hair below z
}

/**
 * Choose the next token from one row of logits: greedy when `temperature` is 0 (or absent),
 * otherwise a draw from the temperature → top-k → top-p distribution with `rng`. O(V) without
 * top-k or with top-p alone, O(V log k) with top-k.
 */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (!o.temperature) return argmax(logits);
  const V = logits.length;
  const { temp, topK, topP } = options(V, o);
  const ws = weights(logits, temp);
  const { w, sum } = ws;
  if (topK < V) return draw(w, topPOfList(w, topKIds(w, topK), topP), rng);
  if (topP < 1) {
    const { w0, ties } = nucleus(ws, topP);
    return draw(w, nucleusIds(w, w0, ties), rng);
  }
  // the whole distribution, in id order
  const u = rng.random() * sum;
  let cum = 0;
  for (let i = 0; i < V; i++) {
    cum += w[i];
    if (u < cum) return i;
  }
  return argmax(logits);
}
