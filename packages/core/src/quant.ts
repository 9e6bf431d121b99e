/**
 * 8- and 4-bit block-quantized weights in ggml's layouts (the bytes GGUF stores), for the
 * `Kernels.gemvQ` / `Kernels.gemmQ` products:
 *
 * ```
 * Q8_0  (ggml type 8)   { f16 d; i8 qs[32] }  34 bytes / 32 values   w = qs[i]·d
 * Q4_0  (ggml type 2)   { f16 d; u8 qs[16] }  18 bytes / 32 values   w = (nibble − 8)·d,
 *                                                                     low nibbles = values 0..15
 * ```
 *
 * The kernels read them repacked four rows at a time (`repackQ`, lossless: the same quants, the
 * f16 scales widened exactly to f32), so that one load of an activation block feeds four rows:
 *
 * ```
 * row group g (rows 4g..4g+3, rows past N zero), K/32 block groups in order, each
 *   { f32 d[4]; qs of row 4g; qs of row 4g+1; qs of row 4g+2; qs of row 4g+3 }   Q8_0 144 B, Q4_0 80 B
 * ```
 *
 * `quantizeQ8_0` / `quantizeQ4_0` are ggml's `quantize_row_q8_0_ref` / `quantize_row_q4_0_ref`
 * (f32 arithmetic, f16 scale rounded to nearest even), so a weight quantized here has the bytes
 * llama.cpp would write; `dequantize` (gguf.ts) inverts them bit for bit as ggml does.
 *
 * ```ts
 * const w = quantizeLinearWeight(rt, weight.data, out, inFeatures, "q4"); // Linear [out, in]
 * linearQ(rt, w, M, x, y, { bias, xq });                                  // y = x·Wᵀ + b
 * ```
 */
import { InputError, ShapeError } from "./errors.js";
import { f16BitsToF32Bits, f32ToF16 } from "./float16.js";
import type { ActCode } from "./kernels.js";
import type { Runtime } from "./runtime.js";

/** ggml type ids of the packed formats. */
export const GgmlType = { Q4_0: 2, Q8_0: 8 } as const;
export type QuantType = (typeof GgmlType)[keyof typeof GgmlType];

/** The `dtype` option of the model loaders: "f32" (default), or on-load quantization to Q8_0 / Q4_0. */
export type WeightDtype = "f32" | "q8" | "q4";

/** The ggml type of a quantizing `dtype` ("q8" → Q8_0, "q4" → Q4_0), undefined for "f32". */
export function quantTypeOf(dtype: WeightDtype): QuantType | undefined {
  return dtype === "q8" ? GgmlType.Q8_0 : dtype === "q4" ? GgmlType.Q4_0 : undefined;
}

/** Check a user's `dtype` option: "f32", "q8" or "q4" (undefined = "f32"); otherwise an `InputError`. */
export function checkWeightDtype(dtype: unknown, where = "dtype"): WeightDtype {
  if (dtype === undefined) return "f32";
  if (dtype === "f32" || dtype === "q8" || dtype === "q4") return dtype;
  throw new InputError(
    `${where} must be "f32", "q8" or "q4", got ${typeof dtype === "string" ? JSON.stringify(dtype) : String(dtype)}`,
  );
}

/** Bytes of one row of K values (K a multiple of 32) of `type`. */
export function quantRowBytes(type: QuantType, K: number): number {
  return (K / 32) * (type === GgmlType.Q8_0 ? 34 : 18);
}

/** Bytes of a `[N, K]` weight repacked for the kernels (`repackQ`): ceil(N/4)·(K/32) block groups. */
export function quantBytes(type: QuantType, N: number, K: number): number {
  return Math.ceil(N / 4) * (K / 32) * (type === GgmlType.Q8_0 ? 144 : 80);
}

/**
 * Repack N ggml rows of K values (`N · quantRowBytes(type, K)` bytes at the start of `buf`) into
 * the kernels' layout in place; `buf` must hold `quantBytes(type, N, K)` bytes. Row groups are
 * written last to first: group g's output never reaches the ggml rows of groups before it.
 */
export function repackQInPlace(type: QuantType, N: number, K: number, buf: Uint8Array): void {
  checkBlockDim(K, "repackQ K");
  if (!Number.isInteger(N) || N < 1) throw new ShapeError(`repackQ: N must be an integer ≥ 1, got ${N}`);
  const need = quantBytes(type, N, K);
  if (buf.length < need) throw new ShapeError(`repackQ: ${buf.length} bytes, the repacked [${N}, ${K}] needs ${need}`);
  const qb = type === GgmlType.Q8_0 ? 32 : 16; // quant bytes of one row's block
  const bsz = qb + 2;
  const rb = quantRowBytes(type, K);
  const nb = K / 32;
  const gbb = 16 + 4 * qb;
  const tmp = new Uint8Array(4 * rb);
  const out = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let g = Math.ceil(N / 4) - 1; g >= 0; g--) {
    const rows = Math.min(4, N - 4 * g);
    tmp.fill(0);
    tmp.set(buf.subarray(4 * g * rb, (4 * g + rows) * rb));
    const base = g * nb * gbb;
    for (let b = 0; b < nb; b++) {
      const o = base + b * gbb;
      for (let r = 0; r < 4; r++) {
        const s = r * rb + b * bsz;
        out.setUint32(o + 4 * r, f16BitsToF32Bits(tmp[s] | (tmp[s + 1] << 8)), true);
        const q = o + 16 + r * qb;
        for (let i = 0; i < qb; i++) buf[q + i] = tmp[s + 2 + i];
      }
    }
  }
}

/** `repackQInPlace` into a new array: N ggml rows of K values of `type` → `quantBytes(type, N, K)` bytes. */
export function repackQ(type: QuantType, N: number, K: number, rows: Uint8Array): Uint8Array {
  const out = new Uint8Array(quantBytes(type, N, K));
  if (rows.length !== N * quantRowBytes(type, K)) {
    throw new ShapeError(`repackQ: ${rows.length} bytes are not ${N} rows of ${K} values of ggml type ${type}`);
  }
  out.set(rows);
  repackQInPlace(type, N, K, out);
  return out;
}

/** A `ShapeError` unless K is a positive multiple of the block size 32. */
export function checkBlockDim(K: number, what: string): void {
  if (!Number.isInteger(K) || K < 32 || K % 32 !== 0) {
    throw new ShapeError(`${what}: ${K} is not a positive multiple of 32, the Q8_0/Q4_0 block size`);
  }
}

const f = Math.fround;

/** roundf: to the nearest integer, halves away from zero. */
function roundAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** One Q8_0 block: 32 values of `x` from `xo` → 34 bytes at `o` (ggml's `quantize_row_q8_0_ref`). */
function blockQ8_0(x: ArrayLike<number>, xo: number, dv: DataView, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  dv.setUint16(o, f32ToF16(d), true);
  for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, roundAway(f(x[xo + j] * id)));
}

/** One Q4_0 block: 32 values of `x` from `xo` → 18 bytes at `o` (ggml's `quantize_row_q4_0_ref`). */
function blockQ4_0(x: ArrayLike<number>, xo: number, dv: DataView, o: number): void {
  // the value of largest magnitude, with its sign (the first one on ties), maps to −8
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = f(max / -8);
  const id = d ? f(1 / d) : 0;
  dv.setUint16(o, f32ToF16(d), true);
  for (let j = 0; j < 16; j++) {
    // MIN(15, (int8_t)(x·id + 8.5f)): truncation toward zero of an f32 sum
    const q0 = Math.min(15, Math.trunc(f(f(x[xo + j] * id) + 8.5)));
    const q1 = Math.min(15, Math.trunc(f(f(x[xo + 16 + j] * id) + 8.5)));
    dv.setUint8(o + 2 + j, (q0 & 0xf) | ((q1 & 0xf) << 4));
  }
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Quantize `x` (length a multiple of 32) to Q8_0 blocks, as ggml's `quantize_row_q8_0_ref`. */
export function quantizeQ8_0(x: Float32Array, out: Uint8Array = new Uint8Array((x.length / 32) * 34)): Uint8Array {
  const dv = view(out);
  for (let i = 0; i < x.length / 32; i++) blockQ8_0(x, i * 32, dv, i * 34);
  return out;
}

/** Quantize `x` (length a multiple of 32) to Q4_0 blocks, as ggml's `quantize_row_q4_0_ref`. */
export function quantizeQ4_0(x: Float32Array, out: Uint8Array = new Uint8Array((x.length / 32) * 18)): Uint8Array {
  const dv = view(out);
  for (let i = 0; i < x.length / 32; i++) blockQ4_0(x, i * 32, dv, i * 18);
  return out;
}

/** Quantize values to `type` blocks (length a multiple of 32). */
export function quantizeBlocks(type: QuantType, x: Float32Array, out?: Uint8Array): Uint8Array {
  return type === GgmlType.Q8_0 ? quantizeQ8_0(x, out) : quantizeQ4_0(x, out);
}

/**
 * Quantize the transpose of a row-major [rows, cols] matrix (a Conv1D weight [in, out]) to `type`
 * blocks: output row j (of `cols`) holds column j's `rows` values (a multiple of 32), so the result
 * equals `quantizeBlocks(type, transpose(x))` without a transposed copy.
 */
export function quantizeBlocksTransposed(
  type: QuantType,
  x: Float32Array,
  rows: number,
  cols: number,
  out: Uint8Array = new Uint8Array(cols * quantRowBytes(type, rows)),
  /** bytes of an output row (default: `rows` values' worth) and the block where `x` starts in it */
  rowBytes = quantRowBytes(type, rows),
  firstBlock = 0,
): Uint8Array {
  const dv = view(out);
  const bsz = type === GgmlType.Q8_0 ? 34 : 18;
  const col = new Float32Array(32);
  // a band of 32 input rows at a time (contiguous), then each column's 32 values of it
  for (let b = 0; b < rows / 32; b++) {
    const o = (firstBlock + b) * bsz;
    for (let j = 0; j < cols; j++) {
      for (let i = 0; i < 32; i++) col[i] = x[(b * 32 + i) * cols + j];
      if (type === GgmlType.Q8_0) blockQ8_0(col, 0, dv, j * rowBytes + o);
      else blockQ4_0(col, 0, dv, j * rowBytes + o);
    }
  }
  return out;
}

/** A Linear weight `[N, K]` quantized in a runtime's heap: `quantBytes(type, N, K)` bytes at `ptr`, repacked (`repackQ`). */
export interface QuantizedWeight {
  readonly ptr: number;
  readonly type: QuantType;
  /** input features (a multiple of 32) */
  readonly K: number;
  /** output features */
  readonly N: number;
}

/**
 * Quantize a `torch.nn.Linear` weight `[out, in]` (row-major f32) into a new heap allocation
 * (`dtype` "q8" → Q8_0, "q4" → Q4_0), repacked for the kernels. `in` must be a multiple of 32.
 */
export function quantizeLinearWeight(
  rt: Runtime,
  weight: Float32Array,
  out: number,
  inFeatures: number,
  dtype: "q8" | "q4",
): QuantizedWeight {
  const type = quantTypeOf(checkWeightDtype(dtype)) as QuantType;
  checkBlockDim(inFeatures, "quantizeLinearWeight in");
  if (!Number.isInteger(out) || out < 1) throw new ShapeError(`quantizeLinearWeight out must be ≥ 1, got ${out}`);
  if (weight.length !== out * inFeatures) {
    throw new ShapeError(`quantizeLinearWeight: ${weight.length} values are not [${out}, ${inFeatures}]`);
  }
  const bytes = quantBytes(type, out, inFeatures);
  const ptr = rt.heap.alloc(bytes);
  const buf = rt.heap.u8(ptr, bytes);
  quantizeBlocks(type, weight, buf.subarray(0, out * quantRowBytes(type, inFeatures)));
  repackQInPlace(type, out, inFeatures, buf);
  return { ptr, type, K: inFeatures, N: out };
}

export interface LinearQOptions {
  /** N floats added to every row, or 0 */
  bias?: number;
  act?: ActCode;
  /** 1 adds the product to y (a fused residual), 0 overwrites y */
  beta?: 0 | 1;
  /** floats between rows of x (default K) and of y (default N) */
  ldx?: number;
  ldy?: number;
  /** scratch for the quantized rows of x: `M · xqRowBytes(K)` bytes (needed when M ≤ 4 or W is Q4_0) */
  xq?: number;
}

/**
 * y (M, N) = act(x (M, K) · Wᵀ + bias + beta·y) with a quantized W: x is quantized per block and
 * multiplied by `gemvQ` (integer dot products) when M ≤ 4 (decoding) or W is Q4_0; a Q8_0 W with
 * M > 4 runs `gemmQ` (dequantize-and-pack, f32 activations), which is faster there.
 */
export function linearQ(rt: Runtime, w: QuantizedWeight, M: number, x: number, y: number, o: LinearQOptions = {}) {
  const { bias = 0, act = 0, beta = 0, ldx = w.K, ldy = w.N, xq = 0 } = o;
  if (!Number.isInteger(M) || M < 0) throw new ShapeError(`linearQ: M must be an integer ≥ 0, got ${M}`);
  if (M === 0) return;
  if (M <= 4 || w.type === GgmlType.Q4_0) {
    if (!xq)
      throw new InputError(
        `linearQ: M = ${M} rows on ${w.type === GgmlType.Q4_0 ? "Q4_0" : "Q8_0"} need the xq scratch (M · xqRowBytes(K) bytes)`,
      );
    rt.k.quantizeRowsQ8(x, ldx, M, w.K, xq);
    rt.k.gemvQ(w.type, M, w.N, w.K, xq, w.ptr, y, ldy, bias, beta, act);
  } else {
    rt.k.gemmQ(w.type, M, w.N, w.K, x, ldx, w.ptr, y, ldy, bias, beta, act);
  }
}
