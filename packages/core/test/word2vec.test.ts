/**
 * The word2vec kernels (w2vSgns, w2vCbow): wasm (plain and relaxed SIMD) against the reference
 * backend on random batches with odd dims, and the reference against a direct float64 transcription
 * of word2vec.c's negative-sampling update for one example.
 */
import { beforeAll, describe, expect, it } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { mulberry32 as rng } from "../../../tools/test-utils/src/prng.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
});

interface Problem {
  vocab: number;
  dim: number;
  syn0: Float32Array;
  syn1: Float32Array;
  inWords: Int32Array;
  ctx: Int32Array;
  ctxOff: Int32Array;
  targets: Int32Array;
  nEx: number;
  nTargets: number;
}

function problem(seed: number, vocab: number, dim: number, nEx: number, nTargets: number): Problem {
  const r = rng(seed);
  const id = () => Math.floor(r() * vocab);
  const ctxOff = new Int32Array(nEx + 1);
  for (let x = 0; x < nEx; x++) ctxOff[x + 1] = ctxOff[x] + Math.floor(r() * 5); // 0..4 context words (0: skipped)
  return {
    vocab,
    dim,
    syn0: Float32Array.from({ length: vocab * dim }, () => (r() - 0.5) / dim),
    syn1: Float32Array.from({ length: vocab * dim }, () => (r() - 0.5) * 0.5),
    inWords: Int32Array.from({ length: nEx }, id),
    ctx: Int32Array.from({ length: ctxOff[nEx] }, id),
    ctxOff,
    targets: Int32Array.from({ length: nEx * nTargets }, id),
    nEx,
    nTargets,
  };
}

function run(rt: Runtime, p: Problem, kind: "sgns" | "cbow", alpha: number, mean = 1) {
  const h = rt.heap;
  const m = h.mark();
  const s0 = h.put(p.syn0);
  const s1 = h.put(p.syn1);
  const inW = h.put(p.inWords);
  const ctx = h.put(p.ctx.length ? p.ctx : new Int32Array(1));
  const off = h.put(p.ctxOff);
  const tg = h.put(p.targets);
  const work = h.allocF32(2 * p.dim);
  const loss =
    kind === "sgns"
      ? rt.k.w2vSgns(s0, s1, p.vocab, p.dim, inW, tg, p.nEx, p.nTargets, alpha, work)
      : rt.k.w2vCbow(s0, s1, p.vocab, p.dim, ctx, off, tg, p.nEx, p.nTargets, alpha, mean, work);
  const out = { loss, syn0: h.f32(s0, p.syn0.length).slice(), syn1: h.f32(s1, p.syn1.length).slice() };
  h.release(m);
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array) {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe("word2vec kernels: wasm vs ref", () => {
  for (const dim of [1, 3, 4, 17, 64, 100, 301]) {
    for (const kind of ["sgns", "cbow"] as const) {
      it(`${kind} dim ${dim}`, () => {
        const p = problem(dim * 7 + (kind === "cbow" ? 1 : 0), 50, dim, 40, 6);
        const want = run(ref, p, kind, 0.025);
        expect(Number.isFinite(want.loss)).toBe(true);
        expect(maxDiff(want.syn0, p.syn0) + maxDiff(want.syn1, p.syn1)).toBeGreaterThan(0); // it trains
        for (const rt of wasm) {
          const got = run(rt, p, kind, 0.025);
          expect(Math.abs(got.loss - want.loss)).toBeLessThanOrEqual(1e-4 * Math.abs(want.loss) + 1e-4);
          expect(maxDiff(got.syn0, want.syn0)).toBeLessThan(2e-5);
          expect(maxDiff(got.syn1, want.syn1)).toBeLessThan(2e-5);
        }
      });
    }
  }

  it("cbow with sum (mean = 0)", () => {
    const p = problem(99, 30, 33, 20, 4);
    const want = run(ref, p, "cbow", 0.05, 0);
    for (const rt of wasm) {
      const got = run(rt, p, "cbow", 0.05, 0);
      expect(maxDiff(got.syn0, want.syn0)).toBeLessThan(2e-5);
      expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-3);
    }
  });

  it("a bad id writes nothing and returns NaN (no out-of-bounds access)", () => {
    for (const rt of [ref, ...wasm]) {
      const p = problem(5, 10, 8, 3, 3);
      p.targets[7] = 10; // == vocab
      const got = run(rt, p, "sgns", 0.1);
      expect(got.loss).toBeNaN();
      expect(got.syn0).toEqual(p.syn0);
      expect(got.syn1).toEqual(p.syn1);
      const q = problem(6, 10, 8, 3, 3);
      q.ctxOff[2] = q.ctxOff[1] - 1; // decreasing offsets
      expect(run(rt, q, "cbow", 0.1).loss).toBeNaN();
      const c = problem(7, 10, 8, 3, 3);
      if (c.ctx.length) c.ctx[0] = -1;
      else c.inWords[0] = -1;
      expect(run(rt, c, c.ctx.length ? "cbow" : "sgns", 0.1).loss).toBeNaN();
    }
  });
});

describe("reference = word2vec.c update (float64 transcription)", () => {
  it("one skip-gram example", () => {
    const p = problem(11, 6, 5, 1, 3);
    const got = run(ref, p, "sgns", 0.1);
    // word2vec.c: neu1e = 0; for d: f = l1·syn1neg[l2]; g = (label − σ(f))·alpha;
    //             neu1e += g·syn1neg[l2]; syn1neg[l2] += g·l1;  then syn0[l1] += neu1e
    const syn0 = Float64Array.from(p.syn0);
    const syn1 = Float64Array.from(p.syn1);
    const l1 = p.inWords[0] * 5;
    const neu1e = new Float64Array(5);
    let loss = 0;
    for (let d = 0; d < 3; d++) {
      const l2 = p.targets[d] * 5;
      let f = 0;
      for (let c = 0; c < 5; c++) f += syn0[l1 + c] * syn1[l2 + c];
      const label = d === 0 ? 1 : 0;
      const s = 1 / (1 + Math.exp(-f));
      loss += -Math.log(label ? s : 1 - s);
      const g = (label - s) * 0.1;
      for (let c = 0; c < 5; c++) neu1e[c] += g * syn1[l2 + c];
      for (let c = 0; c < 5; c++) syn1[l2 + c] += g * syn0[l1 + c];
    }
    for (let c = 0; c < 5; c++) syn0[l1 + c] += neu1e[c];
    expect(got.loss).toBeCloseTo(loss, 6);
    for (let i = 0; i < syn0.length; i++) expect(got.syn0[i]).toBeCloseTo(syn0[i], 6);
    for (let i = 0; i < syn1.length; i++) expect(got.syn1[i]).toBeCloseTo(syn1[i], 6);
  });
});
