// GEMM family: C = act(alpha·op(A)·op(B) + bias + beta·C), batched matmul, GEMV. Layout: src/kernels.ts.
import { fma4, hsum4 } from "./inline/fma";
import { act1 } from "./activations";

/** Simple SIMD GEMM (to be replaced by the register-blocked packed kernel). */
export function gemm(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, transA: i32,
  b: usize, ldb: i32, transB: i32,
  c: usize, ldc: i32,
  bias: usize, alpha: f32, beta: f32, act: i32,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s: f32 = 0;
      for (let p = 0; p < K; p++) {
        const av = transA ? load<f32>(a + (<usize>(p * lda + i) << 2)) : load<f32>(a + (<usize>(i * lda + p) << 2));
        const bv = transB ? load<f32>(b + (<usize>(j * ldb + p) << 2)) : load<f32>(b + (<usize>(p * ldb + j) << 2));
        s += av * bv;
      }
      let v = alpha * s;
      if (bias) v += load<f32>(bias + (<usize>j << 2));
      const cp = c + (<usize>(i * ldc + j) << 2);
      if (beta != 0) v += beta * load<f32>(cp);
      store<f32>(cp, act1(v, act));
    }
  }
}

export function bmm(
  batch: i32, M: i32, N: i32, K: i32,
  a: usize, strideA: i32, lda: i32, transA: i32,
  b: usize, strideB: i32, ldb: i32, transB: i32,
  c: usize, strideC: i32, ldc: i32,
  alpha: f32, beta: f32,
): void {
  for (let t = 0; t < batch; t++) {
    gemm(M, N, K,
      a + (<usize>(t * strideA) << 2), lda, transA,
      b + (<usize>(t * strideB) << 2), ldb, transB,
      c + (<usize>(t * strideC) << 2), ldc, 0, alpha, beta, 0);
  }
}

/** y[r] = dot(m[r, :], v), rows of d floats. */
export function gemv(m: usize, rows: i32, d: i32, v: usize, y: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = m + (<usize>(r * d) << 2);
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= d; j += 4) acc = fma4(v128.load(row + (<usize>j << 2)), v128.load(v + (<usize>j << 2)), acc);
    let s = hsum4(acc);
    for (; j < d; j++) s += load<f32>(row + (<usize>j << 2)) * load<f32>(v + (<usize>j << 2));
    store<f32>(y + (<usize>r << 2), s);
  }
}
