/**
 * Pre-packed weights: pack a matmul's constant operand once (at model load) into the layout of
 * `Kernels.packB`, then run every product with it through `Kernels.gemmPacked`, which skips the
 * per-call packing and streams the weight once for 1–4 rows (decoding). This is what TF.js's cached
 * XNNPACK weights and an ONNX initializer pre-packed by onnxruntime do.
 *
 * ```ts
 * const w = packLinearWeight(rt, weightPtr, out, in); // torch.nn.Linear weight [out, in] in rt's heap
 * linearPacked(rt, w, M, x, y, { bias, act: Act.gelu }); // y (M, out) = gelu(x (M, in) · Wᵀ + b)
 * ```
 */
import { ShapeError } from "./errors.js";
import type { ActCode } from "./kernels.js";
import type { Runtime } from "./runtime.js";

/** Rows per K block of the packed layout (see `Kernels.packB`). */
export const PACK_KC = 512;

/**
 * Float index of op(B)[p, j] in a packed K×N operand (see `Kernels.packB`): K blocks of PACK_KC
 * rows, each holding the kb×8 slice of every 8-column panel in turn.
 */
export function packedIndex(K: number, N: number, p: number, j: number): number {
  const pc = p - (p % PACK_KC); // first row of p's K block
  const kb = Math.min(PACK_KC, K - pc); // rows in that block
  return pc * Math.ceil(N / 8) * 8 + (j >> 3) * kb * 8 + (p - pc) * 8 + (j & 7);
}

/** A K×N right-hand operand packed in a runtime's heap (`ptr`, `floats` long). */
export interface PackedWeight {
  readonly ptr: number;
  /** rows of op(B): the input features */
  readonly K: number;
  /** columns of op(B): the output features */
  readonly N: number;
  readonly floats: number;
}

function checkDim(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${what} must be a positive integer, got ${v}`);
}

/**
 * Pack op(B) (K×N; `transB = 1` reads `b[j·ldb + p]`, a Linear weight `[N, K]`; `transB = 0` reads
 * `b[p·ldb + j]`, a Conv1D / `[in, out]` weight) into a new heap allocation. The source may be freed
 * or overwritten afterwards.
 */
export function packWeight(
  rt: Runtime,
  b: number,
  K: number,
  N: number,
  transB: 0 | 1,
  ldb = transB ? K : N,
): PackedWeight {
  checkDim("packWeight K", K);
  checkDim("packWeight N", N);
  if (!Number.isInteger(ldb) || ldb < (transB ? K : N)) {
    throw new ShapeError(`packWeight: ldb ${ldb} is less than the row length ${transB ? K : N}`);
  }
  const floats = rt.k.packedSize(K, N);
  const ptr = rt.heap.allocF32(floats);
  rt.k.packB(K, N, b, ldb, transB, ptr);
  return { ptr, K, N, floats };
}

/** Pack a `torch.nn.Linear` weight `[out, in]` (row-major, at `weightPtr`) for `linearPacked`. */
export function packLinearWeight(rt: Runtime, weightPtr: number, out: number, inFeatures: number): PackedWeight {
  return packWeight(rt, weightPtr, inFeatures, out, 1);
}

export interface LinearPackedOptions {
  /** N floats added to every row, or 0 */
  bias?: number;
  act?: ActCode;
  /** 1 adds the product to y (a fused residual), 0 overwrites y */
  beta?: 0 | 1;
  /** floats between rows of x (default K) and of y (default N) */
  ldx?: number;
  ldy?: number;
}

/** y (M, N) = act(x (M, K) · W + bias + beta·y) with a packed W; x and y are heap pointers. */
export function linearPacked(
  rt: Runtime,
  w: PackedWeight,
  M: number,
  x: number,
  y: number,
  o: LinearPackedOptions = {},
) {
  const { bias = 0, act = 0, beta = 0, ldx = w.K, ldy = w.N } = o;
  if (!Number.isInteger(M) || M < 0) throw new ShapeError(`linearPacked: M must be an integer ≥ 0, got ${M}`);
  if (!Number.isInteger(ldx) || ldx < w.K) throw new ShapeError(`linearPacked: ldx ${ldx} is less than K ${w.K}`);
  if (!Number.isInteger(ldy) || ldy < w.N) throw new ShapeError(`linearPacked: ldy ${ldy} is less than N ${w.N}`);
  rt.k.gemmPacked(M, w.N, w.K, x, ldx, 0, w.ptr, y, ldy, bias, 1, beta, act);
}

/** Rows per group of the `Kernels.packRows` layout. */
export const ROWS_GROUP = 24;

/**
 * Float index of W[j, p] in a weight packed by `Kernels.packRows(N, K, …)`: groups of 24 rows; in a
 * group, for each 4-column chunk of K, the six 4-row slices in turn, each as its 4 columns of 4 rows
 * (one vector per column).
 */
export function packedRowsIndex(K: number, j: number, p: number): number {
  const K4 = Math.ceil(K / 4) * 4;
  const g = Math.floor(j / ROWS_GROUP);
  const r = j - g * ROWS_GROUP;
  return (g * K4 + (p - (p % 4))) * ROWS_GROUP + (r >> 2) * 16 + (p % 4) * 4 + (r % 4);
}

/**
 * Pack a `torch.nn.Linear` weight `[out, in]` (row-major at `weightPtr`, row stride `ld` floats) for
 * `Kernels.gemvRows`, the one-row product (recurrent steps, decoding at batch 1). `K` = in, `N` = out.
 */
export function packRowsWeight(
  rt: Runtime,
  weightPtr: number,
  out: number,
  inFeatures: number,
  ld = inFeatures,
): PackedWeight {
  checkDim("packRowsWeight out", out);
  checkDim("packRowsWeight in", inFeatures);
  if (!Number.isInteger(ld) || ld < inFeatures) {
    throw new ShapeError(`packRowsWeight: ld ${ld} is less than the row length ${inFeatures}`);
  }
  const floats = rt.k.packedRowsSize(out, inFeatures);
  const ptr = rt.heap.allocF32(floats);
  rt.k.packRows(out, inFeatures, weightPtr, ld, ptr);
  return { ptr, K: inFeatures, N: out, floats };
}

/**
 * Pack a recurrent weight `W_hh` `[G·H, H]` (row-major at `weightPtr`) for `Kernels.rnnSteps`: its G
 * gate blocks `[H, H]`, each by `packRows(H, H)`, one after the other (`N` = G·H, `K` = H).
 */
export function packRnnWeight(rt: Runtime, weightPtr: number, gates: number, H: number): PackedWeight {
  checkDim("packRnnWeight gates", gates);
  checkDim("packRnnWeight H", H);
  const block = rt.k.packedRowsSize(H, H);
  const ptr = rt.heap.allocF32(gates * block);
  for (let q = 0; q < gates; q++) rt.k.packRows(H, H, weightPtr + q * H * H * 4, H, ptr + q * block * 4);
  return { ptr, K: H, N: gates * H, floats: gates * block };
}
