/**
 * IEEE 754 binary16 (`F16`) and bfloat16 (`BF16`) ⇄ float32 conversion, exact for every input:
 * subnormals, ±0, ±inf and NaN (the NaN payload is kept when widening). Narrowing rounds to nearest,
 * ties to even, and overflows to ±inf, like PyTorch's `.half()` / `.bfloat16()`.
 *
 * - binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; smallest subnormal 2^-24, max 65504.
 * - bfloat16: the top 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa bits).
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Bits of one binary16 → the float32 bit pattern with the same value (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0; // inf / NaN (payload kept)
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0; // normal: rebias 15 → 127
  if (m === 0) return sign >>> 0; // ±0
  // subnormal m·2^-24: normalise so the leading 1 becomes implicit
  let shift = 0;
  let mm = m;
  while ((mm & 0x400) === 0) {
    mm <<= 1;
    shift++;
  }
  return (sign | ((113 - shift) << 23) | ((mm & 0x3ff) << 13)) >>> 0;
}

/** Float32 bits → binary16 bits, rounding to nearest even. */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  const m = x & 0x7fffff;
  if (e === 0xff) return m === 0 ? sign | 0x7c00 : sign | 0x7e00 | (m >>> 13); // inf / quiet NaN
  const E = e - 127;
  if (E > 15) return sign | 0x7c00; // overflow → inf
  if (E >= -14) {
    // normal half: keep 10 mantissa bits, round on the 13 dropped ones
    let v = ((E + 15) << 10) | (m >>> 13);
    const rest = m & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (v & 1) === 1)) v++; // a carry may reach the exponent (→ inf): correct
    return sign | v;
  }
  // subnormal half (or zero): value = M·2^(E−23) with M the 24-bit significand, unit 2^-24
  const shift = -E - 1; // ≥ 14
  if (shift > 24) return sign; // < half a unit: rounds to ±0
  const M = e === 0 ? m : m | 0x800000;
  let q = M >>> shift;
  const rest = M & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

/** Float32 bits → bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN). */
function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The float value of binary16 bits `h` (0..0xffff). */
export function f16ToF32(h: number): number {
  u32Scratch[0] = f16BitsToF32Bits(h & 0xffff);
  return f32Scratch[0];
}

/** The binary16 bits nearest to `x` (first rounded to float32). */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16Bits(u32Scratch[0]);
}

/** The float value of bfloat16 bits `h` (0..0xffff). */
export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** The bfloat16 bits nearest to `x` (first rounded to float32). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToBf16Bits(u32Scratch[0]);
}

let f16Table: Uint32Array | undefined;

/** Widen an array of binary16 bits into float32 (into `out` when given). */
export function f16ArrayToF32(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  if (bits.length >= 16384) {
    // large arrays (weights): a 256 KiB table of all 65536 results, built once, is ~4x faster
    if (!f16Table) {
      f16Table = new Uint32Array(65536);
      for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
    }
    const t = f16Table;
    for (let k = 0; k < bits.length; k++) o[k] = t[bits[k]];
    return out;
  }
  for (let k = 0; k < bits.length; k++) o[k] = f16BitsToF32Bits(bits[k]);
  return out;
}

/** Narrow float32 values to binary16 bits (into `out` when given). */
export function f32ArrayToF16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  const x = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let k = 0; k < x.length; k++) out[k] = f32BitsToF16Bits(x[k]);
  return out;
}

/** Widen an array of bfloat16 bits into float32 (into `out` when given). */
export function bf16ArrayToF32(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let k = 0; k < bits.length; k++) o[k] = bits[k] << 16;
  return out;
}

/** Narrow float32 values to bfloat16 bits (into `out` when given). */
export function f32ArrayToBf16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  const x = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let k = 0; k < x.length; k++) out[k] = f32BitsToBf16Bits(x[k]);
  return out;
}
