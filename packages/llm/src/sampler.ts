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

/**
 * The filtered distribution of temperature → top-k → top-p over `logits` (not modified), sorted by
 * decreasing probability (lower id first on ties) and renormalised.
 */
export function candidates(logits: ArrayLike<number>, o: SamplingOptions): Candidates {
  const V = logits.length;
  const temp = o.temperature && o.temperature > 0 ? o.temperature : 1;
  const topK = o.topK && o.topK > 0 ? Math.min(o.topK, V) : V;
  const topP = o.topP ?? 1;
  // softmax(logits / T) in f64
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) {
    const e = Math.exp((logits[i] - max) / temp);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < V; i++) p[i] /= sum;
  // Tokens below (1 − topP)/V together weigh less than 1 − topP, so the nucleus lies in the rest:
  // only those need sorting (all of them when topP = 1 and no top-k).
  const floor = topK === V && topP < 1 ? (1 - topP) / V : 0;
  let idx: number[] = [];
  for (let i = 0; i < V; i++) if (p[i] >= floor && p[i] > 0) idx.push(i);
  if (idx.length === 0) idx.push(argmax(logits)); // everything underflowed: greedy
  idx.sort((a, b) => p[b] - p[a] || a - b);
  if (idx.length > topK) idx = idx.slice(0, topK);
  // top-p on the top-k-renormalised distribution (HF applies top-p to the top-k-filtered logits)
  let kept = idx.length;
  if (topP < 1) {
    // the mass top-p is relative to: the top-k set, or everything (the pre-filter dropped some)
    let mass = 1;
    if (topK < V) {
      mass = 0;
      for (const i of idx) mass += p[i];
    }
    let cum = 0;
    kept = 0;
    while (kept < idx.length) {
      cum += p[idx[kept]] / mass;
      kept++;
      if (cum >= topP) break;
    }
  }
  const ids = Int32Array.from(idx.slice(0, kept));
  const probs = new Float64Array(kept);
  let z = 0;
  for (let j = 0; j < kept; j++) z += p[ids[j]];
  for (let j = 0; j < kept; j++) probs[j] = p[ids[j]] / z;
  return { ids, probs };
}

/**
 * Choose the next token from one row of logits: greedy when `temperature` is 0 (or absent),
 * otherwise a draw from the filtered distribution with `rng`.
 */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (!o.temperature) return argmax(logits);
  const c = candidates(logits, o);
  const u = rng.random();
  let cum = 0;
  for (let j = 0; j < c.ids.length; j++) {
    cum += c.probs[j];
    if (u < cum) return c.ids[j];
  }
  return c.ids[c.ids.length - 1]; // rounding: cum may end a hair below 1
}
