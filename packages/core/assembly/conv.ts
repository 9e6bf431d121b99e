// Convolution helpers: im2col for a patch (stride = kernel) convolution, as in ViT's patch
// embedding, so that the convolution becomes one GEMM with the [out, C·k·k] weight. Layout: src/kernels.ts.

/**
 * Kernels.im2colPatch: out[(r·gw + c), (ch·k + u)·k + v] = x[ch, r·k + u, c·k + v] for one CHW
 * image, gh = ⌊H/k⌋, gw = ⌊W/k⌋; each patch row segment is k contiguous floats, copied with
 * f32x4 moves and a scalar tail. Rows/columns past the last whole patch are ignored.
 */
export function im2colPatch(x: usize, C: i32, H: i32, W: i32, k: i32, out: usize): void {
  if (k <= 0 || C <= 0) return;
  const gh = H / k;
  const gw = W / k;
  const k4 = k & ~3;
  const planeBytes = <usize>H * <usize>W << 2;
  const rowBytes = <usize>W << 2;
  let dst = out;
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      // one output row: C·k·k floats, in (ch, u, v) order
      const src0 = x + (<usize>(r * k) * <usize>W + <usize>(c * k) << 2);
      for (let ch = 0; ch < C; ch++) {
        let src = src0 + <usize>ch * planeBytes;
        for (let u = 0; u < k; u++) {
          let v = 0;
          for (; v < k4; v += 4) v128.store(dst + (<usize>v << 2), v128.load(src + (<usize>v << 2)));
          for (; v < k; v++) store<f32>(dst + (<usize>v << 2), load<f32>(src + (<usize>v << 2)));
          dst += <usize>k << 2;
          src += rowBytes;
        }
      }
    }
  }
}
