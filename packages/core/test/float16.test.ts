import { describe, expect, test } from "vitest";
import {
  bf16ArrayToF32,
  bf16ToF32,
  f16ArrayToF32,
  f16ToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16,
  f32ToF16,
} from "../src/float16.js";

/** binary16 value by the textbook formula (independent of the bit tricks under test). */
function f16Reference(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Number.POSITIVE_INFINITY : Number.NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];
const nextUp = (x: number) => new Float32Array(new Uint32Array([f32bits(x) + 1]).buffer)[0];
const nextDown = (x: number) => new Float32Array(new Uint32Array([f32bits(x) - 1]).buffer)[0];

describe("binary16", () => {
  test("widening is exact for all 65536 codes (subnormals, ±0, ±inf, NaN)", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = f16ArrayToF32(all);
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const ref = f16Reference(h);
      const same = (v: number) => (Number.isNaN(ref) ? Number.isNaN(v) : Object.is(v, ref));
      if (!same(wide[h]) || !same(f16ToF32(h))) bad.push(h);
    }
    expect(bad).toEqual([]);
    // the small-array path (direct conversion) and the large-array path (table) agree bit for bit
    const chunked = new Float32Array(65536);
    for (let i = 0; i < 65536; i += 4096) f16ArrayToF32(all.subarray(i, i + 4096), chunked.subarray(i, i + 4096));
    expect(new Uint32Array(chunked.buffer)).toEqual(new Uint32Array(wide.buffer));
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x0400)).toBe(2 ** -14);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(f16ToF32(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });

  test("NaN payload is kept when widening arrays", () => {
    // (a scalar NaN read into a JS number may be quieted by the engine; arrays keep the bits)
    const out = f16ArrayToF32(Uint16Array.from([0x7d01, 0xfe00]));
    const bits = new Uint32Array(out.buffer);
    expect(bits[0]).toBe(0x7f800000 | (0x101 << 13));
    expect(bits[1]).toBe((0xff800000 | (0x200 << 13)) >>> 0);
  });

  test("narrowing round-trips every non-NaN code", () => {
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const x = f16Reference(h);
      if (!Number.isNaN(x) && f32ToF16(x) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
    const nan = f32ToF16(Number.NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  test("narrowing rounds to nearest, ties to even, around every pair of neighbours", () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x7c00; h++) {
      const a = f16Reference(h);
      const b = f16Reference(h + 1); // h + 1 = 0x7c00 is +inf: the tie above 65504 goes to inf (even)
      const mid = h + 1 === 0x7c00 ? 65520 : (a + b) / 2; // exact in f32 (12 significant bits)
      const even = (h & 1) === 0 ? h : h + 1;
      const got = [f32ToF16(mid), f32ToF16(-mid), f32ToF16(nextDown(mid)), f32ToF16(nextUp(mid))];
      if (got[0] !== even || got[1] !== (even | 0x8000) || got[2] !== h || got[3] !== h + 1) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  test("overflow, underflow and special values", () => {
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519.99)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(-1e10)).toBe(0xfc00);
    expect(f32ToF16(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(f32ToF16(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(f32ToF16(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal → even (0)
    expect(f32ToF16(nextUp(2 ** -25))).toBe(1);
    expect(f32ToF16(1.5 * 2 ** -24)).toBe(2); // tie between 1 and 2 units → even
    expect(f32ToF16(2 ** -26)).toBe(0);
    expect(f32ToF16(1e-45)).toBe(0); // float32 subnormal
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(0.1)).toBe(0x2e66);
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest subnormal + half a unit → min normal (even)
  });

  test("array versions match the scalar ones", () => {
    const x = new Float32Array([0, -0, 1, -1.5, Math.PI, 1e-6, 7e-8, 6e4, 7e4, Number.NaN, Number.NEGATIVE_INFINITY]);
    const h = f32ArrayToF16(x);
    for (let k = 0; k < x.length; k++) expect(h[k]).toBe(f32ToF16(x[k]));
    const back = f16ArrayToF32(h);
    for (let k = 0; k < x.length; k++) expect(Object.is(back[k], f16ToF32(h[k]))).toBe(true);
  });
});

describe("bfloat16", () => {
  test("widening is the top half of a float32", () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(bf16ToF32(0x7f80)).toBe(Number.POSITIVE_INFINITY);
    expect(bf16ToF32(0xff80)).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isNaN(bf16ToF32(0x7fc0))).toBe(true);
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // subnormal
    expect(Object.is(bf16ToF32(0x8000), -0)).toBe(true);
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = bf16ArrayToF32(all);
    const bits = new Uint32Array(wide.buffer);
    expect(bits.every((b, h) => b === (h << 16) >>> 0)).toBe(true);
  });

  test("narrowing round-trips, rounds ties to even, overflows to inf, keeps NaN", () => {
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const x = bf16ToF32(h);
      if (Number.isNaN(x)) {
        const back = f32ToBf16(x);
        if ((back & 0x7f80) !== 0x7f80 || (back & 0x7f) === 0) bad.push(h);
        continue;
      }
      if (f32ToBf16(x) !== h) bad.push(h);
      if ((h & 0x7f80) === 0x7f80 || (h & 0x7fff) === 0x7f7f) continue; // inf, or below inf
      // midpoint between h and h + 1 (same sign): f32 bits (h << 16) | 0x8000
      const mid = new Float32Array(new Uint32Array([((h << 16) | 0x8000) >>> 0]).buffer)[0];
      if (f32ToBf16(mid) !== ((h & 1) === 0 ? h : h + 1)) bad.push(h);
      if (f32ToBf16(nextDown(Math.abs(mid)) * Math.sign(mid)) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // FLT_MAX rounds up to inf
    expect(f32ToBf16(-3.4028234663852886e38)).toBe(0xff80);
    expect(f32ToBf16(Number.NaN) & 0x7fc0).toBe(0x7fc0);
    const x = new Float32Array([1, 1.00390625, 1.01171875, -0.1, 65504, Number.NaN]);
    const b = f32ArrayToBf16(x);
    for (let k = 0; k < x.length; k++) expect(b[k]).toBe(f32ToBf16(x[k]));
    expect(b[1]).toBe(0x3f80); // 1 + 2^-8 is a tie → even (1)
    expect(b[2]).toBe(0x3f82); // 1 + 3·2^-8 is a tie → even (1 + 2^-6)
  });
});
