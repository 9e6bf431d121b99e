/**
 * Pre-packed GEMM (packedSize, packB, gemmPacked): the plain-SIMD and relaxed-SIMD builds against
 * the reference backend on seeded random data, on the same shape grid and options as gemm.test.ts.
 * - `packB` writes the documented layout bit for bit in every backend (it only moves floats), and
 *   nothing past `packedSize(K, N)` floats.
 * - `gemmPacked` on a packed op(B) equals the reference `gemm` on the unpacked op(B) within
 *   |wasm − ref| ≤ 16·ε·√K·(|alpha|·Σ_p |A_ip·B_pj| + |bias_j| + |beta·C_ij|), ε = 2⁻²⁴ (activations
 *   widened by how far they move over that bound), and writes nothing outside C's M×N view.
 * - The reference `gemmPacked` reads the layout itself and matches the reference `gemm` exactly.
 */
import { beforeAll, describe, expect, it } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { ShapeError } from "../src/errors.js";
import { Act } from "../src/kernels.js";
import { linearPacked, PACK_KC, packLinearWeight, packWeight } from "../src/packed.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import {
  bitsOf,
  checkGemm,
  type GemmCase,
  type GemmData,
  GUARD,
  gemmLabel,
  gemmOracle,
  makeGemmData,
  SENTINEL,
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

// ---------------------------------------------------------------------------------------------
// harness (the shared part: gemm-harness.ts)

/** packB on a runtime: the packed floats plus the guard band after them. */
function runPack(rt: Runtime, K: number, N: number, B: Float32Array, ldb: number, transB: number): Float32Array {
  const h = rt.heap;
  const mark = h.mark();
  const size = rt.k.packedSize(K, N);
  const b = h.put(B);
  const dst = h.put(bitsToF32(new Uint32Array(size + GUARD).fill(SENTINEL)));
  expect(dst % 16).toBe(0);
  rt.k.packB(K, N, b, ldb, transB, dst);
  const out = h.f32(dst, size + GUARD).slice();
  if (!sameBits(h.f32(b, B.length), B)) expect.fail(`${rt.backend} packB K=${K} N=${N}: modified B`);
  h.release(mark);
  return out;
}

const bitsToF32 = (u: Uint32Array) => new Float32Array(u.buffer);

/**
 * gemmPacked on a runtime with B packed by `packer` (default: the same runtime); returns C with its
 * guard band.
 */
function runPacked(rt: Runtime, c: GemmCase, d: GemmData, packer: Runtime = rt, A = d.A, act = c.act): Float32Array {
  const packed = runPack(packer, c.K, c.N, d.B, d.ldb, c.transB);
  const size = rt.k.packedSize(c.K, c.N);
  const h = rt.heap;
  const mark = h.mark();
  const a = h.put(A),
    pb = h.put(packed.length ? packed : new Float32Array(1)),
    cp = h.put(d.C),
    bias = d.bias ? h.put(d.bias) : 0;
  rt.k.gemmPacked(c.M, c.N, c.K, a, d.lda, c.transA, pb, cp, d.ldc, bias, c.alpha, c.beta, act);
  const out = h.f32(cp, d.C.length).slice();
  if (!sameBits(h.f32(a, A.length), A)) expect.fail(`${rt.backend} ${gemmLabel(c)}: modified A`);
  if (!sameBits(h.f32(pb, size), packed.subarray(0, size)))
    expect.fail(`${rt.backend} ${gemmLabel(c)}: modified packed B`);
  h.release(mark);
  return out;
}

/** The reference gemm on the unpacked operands. */
function runRefGemm(c: GemmCase, d: GemmData, A: Float32Array, B: Float32Array, act: number, alpha: number) {
  const h = ref.heap;
  const mark = h.mark();
  const a = h.put(A),
    b = h.put(B),
    cp = h.put(d.C),
    bias = d.bias ? h.put(d.bias) : 0;
  ref.k.gemm(c.M, c.N, c.K, a, d.lda, c.transA, b, d.ldb, c.transB, cp, d.ldc, bias, alpha, c.beta, act);
  const out = h.f32(cp, d.C.length).slice();
  h.release(mark);
  return out;
}

/** One case: the reference gemmPacked equals the reference gemm; every wasm build is within bound. */
function parity(c: GemmCase, seed: number, crossPack = false) {
  const d = makeGemmData(c, rng(seed), true);
  const o = gemmOracle(c, d, runRefGemm);
  const refPacked = runPacked(ref, c, d);
  if (!sameBits(refPacked, o.want)) expect.fail(`ref gemmPacked ≠ ref gemm: ${gemmLabel(c)}`);
  for (const rt of wasm) {
    checkGemm(runPacked(rt, c, d), c, d, o, rt.backend);
    // a weight packed by the reference backend works unchanged in wasm (one layout everywhere)
    if (crossPack) checkGemm(runPacked(rt, c, d, ref), c, d, o, `${rt.backend} (ref-packed)`);
  }
}

const base = { padA: 0, padB: 0, padC: 0, bias: false, alpha: 1, beta: 0, act: Act.none };

// ---------------------------------------------------------------------------------------------

describe("packedSize / packB", () => {
  it("packedSize = ⌈N/8⌉·8·K, 0 for an empty operand, in every backend", () => {
    for (const rt of [ref, ...wasm]) {
      expect(rt.k.packedSize(768, 3072)).toBe(768 * 3072);
      expect(rt.k.packedSize(5, 17)).toBe(5 * 24);
      expect(rt.k.packedSize(1, 1)).toBe(8);
      expect(rt.k.packedSize(3, 8)).toBe(24);
      expect(rt.k.packedSize(0, 9)).toBe(0);
      expect(rt.k.packedSize(9, 0)).toBe(0);
    }
  });

  it("writes the documented layout, bit for bit in every backend, and nothing past it", () => {
    const r = rng(3);
    let n = 0;
    for (const K of [1, 2, 3, 5, 17, 65, 256, 260, 513]) {
      for (const N of [1, 3, 7, 8, 9, 16, 17, 33, 129]) {
        for (const transB of [0, 1]) {
          const pad = r.pick([0, 0, 1, 4, 7]);
          const ldb = (transB ? K : N) + pad;
          const B = r.f32(ldb * (transB ? N : K));
          const size = Math.ceil(N / 8) * 8 * K;
          // the layout, written out independently of both backends: K blocks of PACK_KC rows, each
          // holding its kb×8 slice of every 8-column panel in turn (PACK_KC and the kernels' KC in
          // assembly/gemm.ts must agree: this test fails when they do not)
          const want = new Float32Array(size + GUARD);
          bitsOf(want).fill(SENTINEL, size);
          const N8 = Math.ceil(N / 8) * 8;
          let at = 0;
          for (let pc = 0; pc < K; pc += PACK_KC) {
            const kb = Math.min(PACK_KC, K - pc);
            for (let q = 0; q < N8 / 8; q++) {
              for (let p = pc; p < pc + kb; p++) {
                for (let jj = 0; jj < 8; jj++) {
                  const j = 8 * q + jj;
                  want[at++] = j >= N ? 0 : transB ? B[j * ldb + p]! : B[p * ldb + j]!;
                }
              }
            }
          }
          expect(at).toBe(size);
          for (const rt of [ref, ...wasm]) {
            const got = runPack(rt, K, N, B, ldb, transB);
            if (!sameBits(got, want)) expect.fail(`${rt.backend} packB K=${K} N=${N} transB=${transB} ldb=${ldb}`);
          }
          n++;
        }
      }
    }
    expect(n).toBe(9 * 9 * 2);
  });

  it("K = 0 or N = 0 writes nothing", () => {
    for (const rt of wasm) {
      for (const [K, N] of [
        [0, 5],
        [5, 0],
      ] as const) {
        const got = runPack(rt, K, N, new Float32Array(8).fill(1), 8, 0);
        expect(got.length).toBe(GUARD);
        for (const u of bitsOf(got)) expect(u).toBe(SENTINEL);
      }
    }
  });
});

describe("gemmPacked", () => {
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      it(`all M, N, K in {${SIZES.join(",")}}³, transA=${transA}, B packed from transB=${transB}`, () => {
        const cases = sizeCubeCases(2000 + 2 * transA + transB, transA, transB);
        cases.forEach((c, n) => {
          parity(c, 19 * n + transA * 7 + transB, n % 11 === 0);
        });
        expect(cases.length).toBe(SIZES.length ** 3);
      });
    }
  }

  it("M = 1..4 (the streaming path) at every width and depth, both transA, ld > width", () => {
    let s = 0;
    for (const M of [1, 2, 3, 4]) {
      for (const N of [1, 2, 5, 7, 8, 9, 15, 16, 17, 33, 100, 1030]) {
        for (const K of [1, 2, 3, 4, 5, 7, 8, 9, 33, 256, 300, 600]) {
          const transA = s % 3 === 2 ? 1 : 0;
          parity(
            {
              ...base,
              M,
              N,
              K,
              transA,
              transB: (s >> 1) % 2,
              padA: s % 4,
              padB: s % 3,
              padC: (s >> 2) % 3,
              bias: s % 2 === 0,
              alpha: s % 7 === 0 ? -0.75 : 1,
              beta: (s >> 1) % 2,
              act: s % 5 === 0 ? Act.relu : s % 5 === 1 ? Act.gelu : Act.none,
            },
            500 + s++,
            s % 9 === 0,
          );
        }
      }
    }
  });

  it("several K blocks, M blocks and N blocks (K > 512, M > 240, N > 1024)", () => {
    let s = 0;
    for (const transA of [0, 1]) {
      for (const transB of [0, 1]) {
        const c = { ...base, transA, transB, padA: 3, padB: 5, padC: 1, bias: true, beta: 1, act: Act.gelu };
        parity({ ...c, M: 25, N: 37, K: 520 }, 900 + s++);
        parity({ ...c, M: 151, N: 20, K: 40 }, 900 + s++);
        parity({ ...c, M: 251, N: 19, K: 33 }, 900 + s++); // 2 M blocks of gemmPacked (MCP = 40·MR ≤ 240)
        parity({ ...c, M: 7, N: 1030, K: 30 }, 900 + s++);
        parity({ ...c, M: 3, N: 1030, K: 520 }, 900 + s++);
      }
    }
    parity(
      { ...base, M: 150, N: 1030, K: 260, transA: 0, transB: 1, padA: 1, padC: 2, bias: true, beta: 1, act: Act.silu },
      950,
    );
    parity(
      { ...base, M: 13, N: 21, K: 777, transA: 0, transB: 1, bias: true, alpha: 0.75, beta: 0, act: Act.tanh },
      951,
      true,
    );
  });

  it("every fused activation, with bias and accumulation, blocked and streaming", () => {
    let s = 0;
    for (const act of Object.values(Act)) {
      const positive = act === Act.sqrt || act === Act.log;
      for (const [M, N, K] of [
        [17, 33, 65],
        [1, 37, 300],
        [4, 41, 19],
        [6, 8, 3],
      ] as const) {
        for (const transB of [0, 1]) {
          parity({ ...base, M, N, K, transA: 0, transB, padC: 3, bias: true, beta: 1, act, positive }, 1000 + s++);
        }
      }
    }
  });

  it("K = 0 gives act(bias + beta·C); M = 0 or N = 0 writes nothing", () => {
    for (const M of [2, 7]) {
      for (const beta of [0, 1]) {
        parity(
          { ...base, M, N: 10, K: 0, transA: 0, transB: 0, padC: 2, bias: true, beta, act: Act.relu },
          1100 + beta,
        );
      }
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
        rt.k.gemmPacked(M, N, 4, c, 4, 0, c, c, 4, 0, 1, 0, Act.none);
        expect(h.f32(c, GUARD)).toEqual(new Float32Array(GUARD).fill(7));
        h.release(mark);
      }
    }
  });

  it("matches gemm exactly on small integers, streaming and blocked", () => {
    const r = rng(5);
    for (const [M, N, K] of [
      [1, 19, 37],
      [3, 19, 37],
      [9, 19, 37],
      [40, 70, 300],
    ] as const) {
      const A = Float32Array.from({ length: M * K }, () => r.int(-8, 9));
      const B = Float32Array.from({ length: N * K }, () => r.int(-8, 9)); // [N, K]
      for (const rt of wasm) {
        const h = rt.heap;
        const mark = h.mark();
        const a = h.put(A),
          b = h.put(B),
          pb = h.allocF32(rt.k.packedSize(K, N)),
          c1 = h.allocF32(M * N),
          c2 = h.allocF32(M * N);
        rt.k.packB(K, N, b, K, 1, pb);
        rt.k.gemm(M, N, K, a, K, 0, b, K, 1, c1, N, 0, 1, 0, Act.none);
        rt.k.gemmPacked(M, N, K, a, K, 0, pb, c2, N, 0, 1, 0, Act.none);
        expect(h.f32(c2, M * N)).toEqual(h.f32(c1, M * N));
        h.release(mark);
      }
    }
  });
});

describe("packLinearWeight / linearPacked", () => {
  it("a packed Linear weight gives gemm's result (transB = 1) in every backend", () => {
    const r = rng(9);
    for (const [M, out, inF] of [
      [1, 50, 37],
      [3, 24, 300],
      [20, 9, 17],
    ] as const) {
      const W = r.f32(out * inF),
        X = r.f32(M * inF),
        b = r.f32(out);
      const results = [ref, ...wasm].map((rt) => {
        const h = rt.heap;
        const mark = h.mark();
        const pw = h.put(W),
          px = h.put(X),
          pb = h.put(b),
          y1 = h.allocF32(M * out),
          y2 = h.allocF32(M * out);
        const w = packLinearWeight(rt, pw, out, inF);
        expect(w).toMatchObject({ K: inF, N: out, floats: rt.k.packedSize(inF, out) });
        linearPacked(rt, w, M, px, y1, { bias: pb, act: Act.relu });
        rt.k.gemm(M, out, inF, px, inF, 0, pw, inF, 1, y2, out, pb, 1, 0, Act.relu);
        const got = [h.f32(y1, M * out).slice(), h.f32(y2, M * out).slice()] as const;
        h.release(mark);
        return got;
      });
      for (const [packed, plain] of results) {
        for (let i = 0; i < packed.length; i++) expect(packed[i]).toBeCloseTo(plain[i]!, 4);
      }
      // the reference backend sums in the same order either way
      expect(results[0]![0]).toEqual(results[0]![1]);
    }
  });

  it("bad dimensions are a ShapeError naming the argument", () => {
    for (const rt of [ref, ...wasm]) {
      expect(() => packLinearWeight(rt, 0, 0, 4)).toThrow(ShapeError);
      expect(() => packLinearWeight(rt, 0, 4, 2.5)).toThrow(/K must be a positive integer, got 2.5/);
      expect(() => packWeight(rt, 0, 4, 8, 0, 7)).toThrow(/ldb 7 is less than the row length 8/);
      const w = { ptr: 0, K: 4, N: 8, floats: 32 };
      expect(() => linearPacked(rt, w, -1, 0, 0)).toThrow(/M must be an integer ≥ 0, got -1/);
      expect(() => linearPacked(rt, w, 1, 0, 0, { ldx: 3 })).toThrow(/ldx 3 is less than K 4/);
      expect(() => linearPacked(rt, w, 1, 0, 0, { ldy: 7 })).toThrow(/ldy 7 is less than N 8/);
    }
  });
});
