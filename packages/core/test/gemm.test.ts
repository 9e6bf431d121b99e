/**
 * GEMM family parity (gemm, bmm, gemv): the AssemblyScript kernels, plain-SIMD and relaxed-SIMD
 * builds, against the reference backend on seeded random data. The wasm kernels sum in a different
 * order (packed K blocks, SIMD lanes, fused multiply-add in the relaxed build), so results are
 * compared with a bound that scales with the size of the terms summed: for every element,
 * |wasm − ref| ≤ 16·ε·√K·(|alpha|·Σ_p |A_ip·B_pj| + |bias_j| + |beta·C_ij|) with ε = 2⁻²⁴
 * (the Σ|A·B| magnitudes come from the reference kernel run on |A| and |B|). Fused activations are
 * checked against the activation of the reference pre-activation, widened by how much the
 * activation can move over that bound. Every call also checks that nothing outside op(C)'s M×N
 * view is written (ld padding and a guard band after C keep sentinel bits).
 */
import { beforeAll, describe, expect, it } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { Act } from "../src/kernels.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import {
  absArr,
  checkGemm,
  EPS,
  type GemmCase,
  type GemmData,
  GUARD,
  gemmLabel,
  gemmOracle,
  makeGemmData,
  SIZES,
  sameBits,
  sizeCubeCases,
} from "./gemm-harness.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
  expect(wasm.map((r) => r.backend)).toEqual(["wasm-simd", "wasm-relaxed"]);
});

/** Run gemm on a runtime; returns C (with its guard band) after the call. */
function runGemm(rt: Runtime, c: GemmCase, d: GemmData, A = d.A, B = d.B, act = c.act, alpha = c.alpha): Float32Array {
  const h = rt.heap;
  const mark = h.mark();
  const a = h.put(A),
    b = h.put(B),
    cp = h.put(d.C),
    bias = d.bias ? h.put(d.bias) : 0;
  for (const p of [a, b, cp, bias]) expect(p % 16).toBe(0);
  rt.k.gemm(c.M, c.N, c.K, a, d.lda, c.transA, b, d.ldb, c.transB, cp, d.ldc, bias, alpha, c.beta, act);
  const out = h.f32(cp, d.C.length).slice();
  // inputs are read-only
  if (!sameBits(h.f32(a, A.length), A)) expect.fail(`${rt.backend} ${gemmLabel(c)}: modified A`);
  if (!sameBits(h.f32(b, B.length), B)) expect.fail(`${rt.backend} ${gemmLabel(c)}: modified B`);
  h.release(mark);
  return out;
}

/** Run a case on the oracle and every wasm build. */
function gemmParity(c: GemmCase, seed: number) {
  const d = makeGemmData(c, rng(seed));
  const o = gemmOracle(c, d, (c2, d2, A, B, act, alpha) => runGemm(ref, c2, d2, A, B, act, alpha));
  for (const rt of wasm) checkGemm(runGemm(rt, c, d), c, d, o, rt.backend);
}

const base = { padA: 0, padB: 0, padC: 0, bias: false, alpha: 1, beta: 0, act: Act.none };

// ---------------------------------------------------------------------------------------------

describe("gemm", () => {
  // every (M, N, K) in SIZES³ for each transA/transB, with ld padding, bias, alpha, beta and
  // activation varied from case to case
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      it(`all M, N, K in {${SIZES.join(",")}}³, transA=${transA} transB=${transB}`, () => {
        const cases = sizeCubeCases(1000 + 2 * transA + transB, transA, transB);
        cases.forEach((c, n) => {
          gemmParity(c, 17 * n + transA * 7 + transB);
        });
        expect(cases.length).toBe(SIZES.length ** 3);
      });
    }
  }

  it("several K blocks, M blocks and N blocks (K > 512, M > 144, N > 1024)", () => {
    let s = 0;
    for (const transA of [0, 1]) {
      for (const transB of [0, 1]) {
        const c = { ...base, transA, transB, padA: 3, padB: 5, padC: 1, bias: true, beta: 1, act: Act.gelu };
        gemmParity({ ...c, M: 25, N: 37, K: 520 }, s++); // 2 K blocks
        gemmParity({ ...c, M: 151, N: 20, K: 40 }, s++); // 2 M blocks
        gemmParity({ ...c, M: 7, N: 1030, K: 30 }, s++); // 2 N blocks
      }
    }
    gemmParity(
      { ...base, M: 150, N: 1030, K: 260, transA: 0, transB: 1, padA: 1, padC: 2, bias: true, beta: 1, act: Act.silu },
      s++,
    );
    // the activation is applied once, after the last K block; beta = 0 must not read C on any block
    gemmParity(
      { ...base, M: 13, N: 21, K: 777, transA: 0, transB: 1, bias: true, alpha: 0.75, beta: 0, act: Act.tanh },
      s++,
    );
    gemmParity({ ...base, M: 7, N: 9, K: 300, transA: 1, transB: 0, beta: 1, act: Act.relu }, s++);
  });

  it("every fused activation, with bias and accumulation", () => {
    let s = 0;
    for (const act of Object.values(Act)) {
      const positive = act === Act.sqrt || act === Act.log;
      for (const [M, N, K] of [
        [17, 33, 65],
        [1, 37, 300],
        [1, 41, 19],
        [6, 8, 3],
      ] as const) {
        for (const transB of [0, 1]) {
          gemmParity({ ...base, M, N, K, transA: 0, transB, padC: 3, bias: true, beta: 1, act, positive }, 100 + s++);
        }
      }
    }
  });

  it("M = 1 (one row: the streaming paths) at every width, incl. non-contiguous op(A)", () => {
    let s = 0;
    for (const N of [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17, 33, 65, 129, 1500]) {
      for (const K of [1, 3, 4, 5, 8, 17, 33, 65, 129, 300]) {
        for (const transB of [0, 1]) {
          gemmParity(
            {
              ...base,
              M: 1,
              N,
              K,
              transA: 0,
              transB,
              padB: s % 3,
              bias: s % 2 === 0,
              beta: (s >> 1) % 2,
              act: s % 5 === 0 ? Act.relu : Act.none,
            },
            200 + s++,
          );
        }
      }
    }
    // op(A) = A^T with M = 1: contiguous only when lda = 1 (padA = 0)
    for (const padA of [0, 2]) {
      for (const transB of [0, 1]) {
        gemmParity({ ...base, M: 1, N: 70, K: 45, transA: 1, transB, padA, bias: true, beta: 1 }, 300 + s++);
      }
    }
  });

  it("K = 0 gives act(bias + beta·C); M = 0 or N = 0 writes nothing", () => {
    for (const beta of [0, 1]) {
      gemmParity(
        { ...base, M: 3, N: 10, K: 0, transA: 0, transB: 0, padC: 2, bias: true, beta, act: Act.relu },
        400 + beta,
      );
    }
    for (const [M, N] of [
      [0, 5],
      [5, 0],
      [0, 0],
    ] as const) {
      for (const rt of wasm) {
        const h = rt.heap;
        const mark = h.mark();
        const c = h.put(new Float32Array(GUARD).fill(7));
        rt.k.gemm(M, N, 4, c, 4, 0, c, 4, 0, c, 4, 0, 1, 0, Act.none);
        expect(h.f32(c, GUARD)).toEqual(new Float32Array(GUARD).fill(7));
        h.release(mark);
      }
    }
  });

  it("matches exactly on small integers (order-independent sums)", () => {
    // integer-valued inputs: every partial sum is exact in f32, so any summation order gives the same bits
    const M = 9,
      N = 19,
      K = 37;
    const r = rng(5);
    const A = Float32Array.from({ length: M * K }, () => r.int(-8, 9));
    const B = Float32Array.from({ length: K * N }, () => r.int(-8, 9));
    const want = new Float32Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += A[i * K + p]! * B[p * N + j]!;
        want[i * N + j] = s;
      }
    }
    for (const rt of wasm) {
      const h = rt.heap;
      const mark = h.mark();
      const a = h.put(A),
        b = h.put(B),
        c = h.allocF32(M * N);
      rt.k.gemm(M, N, K, a, K, 0, b, N, 0, c, N, 0, 1, 0, Act.none);
      expect(h.f32(c, M * N)).toEqual(want);
      h.release(mark);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("bmm", () => {
  interface BmmCase {
    batch: number;
    M: number;
    N: number;
    K: number;
    transA: number;
    transB: number;
    /** 0 broadcasts the operand; otherwise the stride is the operand's size plus this gap */
    gapA: number | "bcast";
    gapB: number | "bcast";
    gapC: number;
    pad: number;
    alpha: number;
    beta: number;
  }

  function runBmm(
    rt: Runtime,
    c: BmmCase,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    lay: ReturnType<typeof layout>,
    alpha = c.alpha,
    beta = c.beta,
  ) {
    const h = rt.heap;
    const mark = h.mark();
    const a = h.put(A),
      b = h.put(B),
      cp = h.put(C);
    rt.k.bmm(
      c.batch,
      c.M,
      c.N,
      c.K,
      a,
      lay.sA,
      lay.lda,
      c.transA,
      b,
      lay.sB,
      lay.ldb,
      c.transB,
      cp,
      lay.sC,
      lay.ldc,
      alpha,
      beta,
    );
    const out = h.f32(cp, C.length).slice();
    h.release(mark);
    return out;
  }

  function layout(c: BmmCase) {
    const lda = (c.transA ? c.M : c.K) + c.pad,
      ldb = (c.transB ? c.K : c.N) + c.pad,
      ldc = c.N + c.pad;
    const sizeA = lda * (c.transA ? c.K : c.M),
      sizeB = ldb * (c.transB ? c.N : c.K),
      sizeC = ldc * c.M;
    const sA = c.gapA === "bcast" ? 0 : sizeA + c.gapA;
    const sB = c.gapB === "bcast" ? 0 : sizeB + c.gapB;
    const sC = sizeC + c.gapC;
    return {
      lda,
      ldb,
      ldc,
      sA,
      sB,
      sC,
      lenA: sA * (c.batch - 1) + sizeA,
      lenB: sB * (c.batch - 1) + sizeB,
      lenC: sC * (c.batch - 1) + sizeC,
    };
  }

  const cases: BmmCase[] = [
    // attention scores Q·Kᵀ per head: K^T via transB, heads as column blocks of one projection
    { batch: 4, M: 17, N: 17, K: 8, transA: 0, transB: 1, gapA: 3, gapB: 5, gapC: 2, pad: 0, alpha: 0.35, beta: 0 },
    // probabilities · V
    { batch: 3, M: 33, N: 16, K: 33, transA: 0, transB: 0, gapA: 0, gapB: 0, gapC: 0, pad: 4, alpha: 1, beta: 0 },
    // one weight for every batch element (stride-0 broadcast of B), accumulate into C
    { batch: 5, M: 13, N: 29, K: 65, transA: 0, transB: 1, gapA: 1, gapB: "bcast", gapC: 7, pad: 3, alpha: 1, beta: 1 },
    // shared B with A and C batches stacked row after row: runs as one taller GEMM
    { batch: 4, M: 7, N: 19, K: 33, transA: 0, transB: 0, gapA: 0, gapB: "bcast", gapC: 0, pad: 2, alpha: 1, beta: 1 },
    {
      batch: 3,
      M: 1,
      N: 45,
      K: 20,
      transA: 0,
      transB: 1,
      gapA: 0,
      gapB: "bcast",
      gapC: 0,
      pad: 0,
      alpha: 0.5,
      beta: 0,
    },
    // one A for every batch element, transposed operands
    {
      batch: 3,
      M: 6,
      N: 40,
      K: 130,
      transA: 1,
      transB: 1,
      gapA: "bcast",
      gapB: 2,
      gapC: 0,
      pad: 1,
      alpha: -0.5,
      beta: 1,
    },
    // decoding: one query row per head
    { batch: 12, M: 1, N: 37, K: 64, transA: 0, transB: 1, gapA: 0, gapB: 0, gapC: 0, pad: 0, alpha: 0.125, beta: 0 },
    { batch: 12, M: 1, N: 64, K: 37, transA: 0, transB: 0, gapA: 0, gapB: 0, gapC: 0, pad: 0, alpha: 1, beta: 0 },
    { batch: 1, M: 129, N: 65, K: 257, transA: 1, transB: 0, gapA: 0, gapB: 0, gapC: 0, pad: 2, alpha: 1, beta: 1 },
  ];

  for (const c of cases) {
    it(`batch=${c.batch} M=${c.M} N=${c.N} K=${c.K} tA=${c.transA} tB=${c.transB} strides ${c.gapA}/${c.gapB}/${c.gapC}`, () => {
      const lay = layout(c);
      const r = rng(c.batch * 1000 + c.M);
      const A = r.f32(lay.lenA),
        B = r.f32(lay.lenB),
        C = r.f32(lay.lenC + GUARD);
      const before = new Uint32Array(C.slice().buffer);
      const want = runBmm(ref, c, A, B, C, lay);
      const mag = runBmm(ref, c, absArr(A), absArr(B), new Float32Array(C.length), lay, Math.abs(c.alpha), 0);
      // which C floats belong to some batch element's M×N view
      const inView = new Uint8Array(C.length);
      for (let t = 0; t < c.batch; t++) {
        for (let i = 0; i < c.M; i++) for (let j = 0; j < c.N; j++) inView[t * lay.sC + i * lay.ldc + j] = 1;
      }
      for (const rt of wasm) {
        const got = runBmm(rt, c, A, B, C, lay);
        const gotBits = new Uint32Array(got.buffer);
        for (let x = 0; x < C.length; x++) {
          if (!inView[x]) {
            if (gotBits[x] !== before[x]) expect.fail(`${rt.backend}: wrote outside the C views at float ${x}`);
            continue;
          }
          const tol = 16 * EPS * Math.sqrt(c.K) * (mag[x]! + Math.abs(c.beta * C[x]!)) + 1e-30;
          if (!(Math.abs(got[x]! - want[x]!) <= tol)) {
            expect.fail(`${rt.backend}: C float ${x} = ${got[x]}, ref ${want[x]} (tol ${tol})`);
          }
        }
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe("gemv", () => {
  it("y = M·v for rows × d in {0..13, 64, 129} × {0, 1, 3, 4, 5, 8, 17, 768}", () => {
    const r = rng(77);
    for (const rows of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 64, 129]) {
      for (const d of [0, 1, 3, 4, 5, 8, 17, 768]) {
        const m = r.f32(rows * d),
          v = r.f32(d);
        const y = new Float32Array(rows + GUARD).fill(Number.NaN);
        const run = (rt: Runtime, mm: Float32Array, vv: Float32Array) => {
          const h = rt.heap;
          const mark = h.mark();
          const pm = h.put(mm.length ? mm : new Float32Array(1)),
            pv = h.put(vv.length ? vv : new Float32Array(1)),
            py = h.put(y);
          rt.k.gemv(pm, rows, d, pv, py);
          const out = h.f32(py, y.length).slice();
          h.release(mark);
          return out;
        };
        const want = run(ref, m, v);
        const mag = run(ref, absArr(m), absArr(v));
        for (const rt of wasm) {
          const got = run(rt, m, v);
          for (let i = 0; i < rows; i++) {
            const tol = 16 * EPS * Math.sqrt(Math.max(d, 1)) * mag[i]! + 1e-30;
            if (!(Math.abs(got[i]! - want[i]!) <= tol)) {
              expect.fail(`${rt.backend} rows=${rows} d=${d}: y[${i}] = ${got[i]}, ref ${want[i]}`);
            }
          }
          for (let g = rows; g < y.length; g++)
            if (!Number.isNaN(got[g])) expect.fail(`${rt.backend}: wrote y[${g}] past rows=${rows}`);
        }
      }
    }
  });
});
