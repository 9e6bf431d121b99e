// Rotary position embedding, "rotate half" pairing (Hugging Face Llama / GPT-NeoX): in a d-wide head
// vector, feature j and feature j + d/2 are rotated together by the angle p·invFreq[j]:
//   x'[j]       = x[j]·cos − x[j + d/2]·sin
//   x'[j + d/2] = x[j + d/2]·cos + x[j]·sin
// The angle is formed in f64 (p·invFreq[j]) and its cosine and sine are rounded to f32. SIMD runs
// over 4 consecutive j at a time, the heads of a row sharing the 4 cosines and sines.

/**
 * Kernels.rope: rows r < `rows` (row stride `ldx` floats), each holding `heads` head vectors of `d`
 * floats side by side from the row start; row r is at position `pos[r]` (i32); `invFreq` holds d/2
 * floats. In place. d must be even (an odd d leaves the last feature unchanged).
 */
export function rope(x: usize, ldx: i32, rows: i32, heads: i32, d: i32, pos: usize, invFreq: usize): void {
  const half = d >> 1;
  if (half <= 0) return;
  const hb = <usize>half << 2; // bytes between feature j and feature j + d/2
  for (let r = 0; r < rows; r++) {
    const p = <f64>load<i32>(pos + (<usize>r << 2));
    const xr = x + ((<usize>r * <usize>ldx) << 2);
    let j = 0;
    for (; j + 4 <= half; j += 4) {
      const fp = invFreq + (<usize>j << 2);
      const a0 = p * <f64>load<f32>(fp);
      const a1 = p * <f64>load<f32>(fp, 4);
      const a2 = p * <f64>load<f32>(fp, 8);
      const a3 = p * <f64>load<f32>(fp, 12);
      let c = f32x4.splat(<f32>Math.cos(a0));
      c = f32x4.replace_lane(c, 1, <f32>Math.cos(a1));
      c = f32x4.replace_lane(c, 2, <f32>Math.cos(a2));
      c = f32x4.replace_lane(c, 3, <f32>Math.cos(a3));
      let s = f32x4.splat(<f32>Math.sin(a0));
      s = f32x4.replace_lane(s, 1, <f32>Math.sin(a1));
      s = f32x4.replace_lane(s, 2, <f32>Math.sin(a2));
      s = f32x4.replace_lane(s, 3, <f32>Math.sin(a3));
      for (let h = 0; h < heads; h++) {
        const lo = xr + ((<usize>h * <usize>d + <usize>j) << 2);
        const u = v128.load(lo);
        const w = v128.load(lo + hb);
        v128.store(lo, f32x4.sub(f32x4.mul(u, c), f32x4.mul(w, s)));
        v128.store(lo + hb, f32x4.add(f32x4.mul(w, c), f32x4.mul(u, s)));
      }
    }
    for (; j < half; j++) {
      const a = p * <f64>load<f32>(invFreq + (<usize>j << 2));
      const c = <f32>Math.cos(a);
      const s = <f32>Math.sin(a);
      for (let h = 0; h < heads; h++) {
        const lo = xr + ((<usize>h * <usize>d + <usize>j) << 2);
        const u = load<f32>(lo);
        const w = load<f32>(lo + hb);
        store<f32>(lo, u * c - w * s);
        store<f32>(lo + hb, w * c + u * s);
      }
    }
  }
}
