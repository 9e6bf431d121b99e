/**
 * The GEMM parity harness shared by gemm.test.ts and gemm-packed.test.ts: seeded operands with
 * ld padding and sentinel bits, the reference results, and the per-element bound
 * |wasm − ref| ≤ 16·ε·√K·(|alpha|·Σ_p |A_ip·B_pj| + |bias_j| + |beta·C_ij|), ε = 2⁻²⁴, widened for
 * a fused activation by how far it moves over that bound; nothing outside C's M×N view may change.
 */
import { expect } from "vitest";
import { type Prng, prng } from "../../../tools/test-utils/src/prng.js";
import { applyAct } from "../src/backend/ref.js";
import { Act } from "../src/kernels.js";

export const SIZES = [1, 3, 5, 17, 33, 65, 129];
export const EPS = 2 ** -24;
export const GUARD = 16; // sentinel floats after C (and after a packed buffer)
export const SENTINEL = 0x7fc0dead; // a NaN payload no kernel produces

export const absArr = (x: Float32Array) => x.map(Math.abs);
export const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

export function sameBits(x: Float32Array, y: Float32Array): boolean {
  const a = bitsOf(x),
    b = bitsOf(y);
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface GemmCase {
  M: number;
  N: number;
  K: number;
  transA: number;
  /** op(B) = Bᵀ (for a packed B: how B was stored before packing, 1 = [N, K] like a Linear weight) */
  transB: number;
  /** extra floats per row beyond the logical width (submatrix views) */
  padA: number;
  padB: number;
  padC: number;
  bias: boolean;
  alpha: number;
  beta: number;
  act: number;
  /** inputs in [0, 1) and a positive bias, so sqrt/log see positive arguments */
  positive?: boolean;
}

/**
 * Every (M, N, K) in SIZES³ for one transA/transB, with ld padding, bias, alpha, beta and the
 * activation varied from case to case (drawn from `seed`).
 */
export function sizeCubeCases(seed: number, transA: number, transB: number): GemmCase[] {
  const r = prng(seed);
  const acts = [Act.none, Act.none, Act.relu, Act.gelu, Act.none, Act.silu, Act.geluTanh, Act.tanh];
  const cases: GemmCase[] = [];
  for (const M of SIZES) {
    for (const N of SIZES) {
      for (const K of SIZES) {
        cases.push({
          M,
          N,
          K,
          transA,
          transB,
          padA: r.pick([0, 0, 1, 3, 8]),
          padB: r.pick([0, 0, 1, 4, 7]),
          padC: r.pick([0, 0, 2, 5]),
          bias: r.next() < 0.5,
          alpha: r.pick([1, 1, 1, 0.5, -1.25]),
          beta: r.pick([0, 1]),
          act: acts[cases.length % acts.length]!,
        });
      }
    }
  }
  return cases;
}

export interface GemmData {
  lda: number;
  ldb: number;
  ldc: number;
  A: Float32Array;
  B: Float32Array;
  /** C before the call, with GUARD sentinel floats after it */
  C: Float32Array;
  bias: Float32Array | null;
}

export const gemmLabel = (c: GemmCase) =>
  `M=${c.M} N=${c.N} K=${c.K} tA=${c.transA} tB=${c.transB} pad=${c.padA}/${c.padB}/${c.padC} ` +
  `bias=${c.bias} alpha=${c.alpha} beta=${c.beta} act=${c.act}`;

/** Random operands for a case (`nonEmpty`: A and B get at least one float even when K, M or N is 0). */
export function makeGemmData(c: GemmCase, r: Prng, nonEmpty = false): GemmData {
  const lda = (c.transA ? c.M : c.K) + c.padA;
  const ldb = (c.transB ? c.K : c.N) + c.padB;
  const ldc = c.N + c.padC;
  const lo = c.positive ? 0 : -1;
  const min = nonEmpty ? 1 : 0;
  const A = r.f32(Math.max(min, lda * (c.transA ? c.K : c.M)), lo, 1);
  const B = r.f32(Math.max(min, ldb * (c.transB ? c.N : c.K)), lo, 1);
  const C = r.f32(ldc * c.M + GUARD, lo, 1);
  const bits = bitsOf(C);
  // beta = 0: C must not be read (a NaN there would leak into the result); padding and guard are sentinels
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < ldc; j++) if (j >= c.N || c.beta === 0) bits[i * ldc + j] = SENTINEL;
  }
  for (let g = 0; g < GUARD; g++) bits[ldc * c.M + g] = SENTINEL;
  const bias = c.bias ? r.f32(c.N, c.positive ? 0.5 : -1, c.positive ? 1.5 : 1) : null;
  return { lda, ldb, ldc, A, B, C, bias };
}

/** A reference gemm of a case on given operands: C (with its guard band) after the call. */
export type RefGemm = (
  c: GemmCase,
  d: GemmData,
  A: Float32Array,
  B: Float32Array,
  act: number,
  alpha: number,
) => Float32Array;

/** Reference results: C with the activation, the pre-activation values, and Σ_p |A_ip·B_pj|. */
export function gemmOracle(c: GemmCase, d: GemmData, run: RefGemm) {
  const want = run(c, d, d.A, d.B, c.act, c.alpha);
  const pre = c.act === Act.none ? want : run(c, d, d.A, d.B, Act.none, c.alpha);
  // the oracle on |A|, |B| with beta = 0, no bias, a zeroed C
  const mag = run(
    { ...c, beta: 0, act: Act.none },
    { ...d, bias: null, C: new Float32Array(d.C.length) },
    absArr(d.A),
    absArr(d.B),
    Act.none,
    1,
  );
  return { want, pre, mag };
}

/** Check one wasm result against the oracle, element by element, and the untouched padding. */
export function checkGemm(got: Float32Array, c: GemmCase, d: GemmData, o: ReturnType<typeof gemmOracle>, who: string) {
  const gotBits = bitsOf(got);
  const cBits = bitsOf(d.C);
  for (let i = 0; i < c.M; i++) {
    for (let j = c.N; j < d.ldc; j++) {
      if (gotBits[i * d.ldc + j] !== cBits[i * d.ldc + j]) {
        expect.fail(`${who} ${gemmLabel(c)}: wrote C padding at row ${i}, column ${j}`);
      }
    }
  }
  for (let g = 0; g < GUARD; g++) {
    if (gotBits[d.ldc * c.M + g] !== SENTINEL) expect.fail(`${who} ${gemmLabel(c)}: wrote ${g} floats past C`);
  }
  const sqrtK = Math.sqrt(Math.max(c.K, 1));
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < c.N; j++) {
      const at = i * d.ldc + j;
      const g = got[at]!,
        w = o.want[at]!,
        v = o.pre[at]!;
      const terms =
        Math.abs(c.alpha) * o.mag[at]! +
        (d.bias ? Math.abs(d.bias[j]!) : 0) +
        (c.beta ? Math.abs(c.beta * d.C[at]!) : 0);
      const tolPre = 16 * EPS * sqrtK * terms + 1e-30;
      let tol = tolPre;
      if (c.act !== Act.none) {
        // how far the activation moves over [v − tol, v + tol], plus its own f32 rounding
        const f = applyAct(v, c.act);
        const spread = Math.max(Math.abs(applyAct(v + tolPre, c.act) - f), Math.abs(applyAct(v - tolPre, c.act) - f));
        tol = spread + 2e-6 * Math.abs(f) + 1e-7;
      }
      const ok = Number.isNaN(w) ? Number.isNaN(g) : Math.abs(g - w) <= tol;
      if (!ok) {
        expect.fail(`${who} ${gemmLabel(c)}: C[${i},${j}] = ${g}, ref ${w} (|diff| ${Math.abs(g - w)} > tol ${tol})`);
      }
    }
  }
}
