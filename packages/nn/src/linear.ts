/**
 * `torch.nn.Linear`: `y = x · Wᵀ + b`, weight `[out, in]`, bias `[out]`.
 * https://pytorch.org/docs/stable/generated/torch.nn.Linear.html
 *
 * The weight is used as stored: it is GEMM's B operand with `transB = 1`, no transpose at load.
 */
import { Act, type ActCode, type Runtime, type Tensor } from "@wasmformer/core";
import { Module } from "./module.js";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

/**
 * `out[rows, N] = act(x[rows, K] · w[N, K]ᵀ + b + beta · out)`; `ldx`/`ldo` are row strides in floats.
 * With `beta = 1` the product is added to what `out` holds (a fused residual connection).
 */
export function linear(
  rt: Runtime,
  x: number,
  rows: number,
  w: Param,
  b: Param | undefined,
  out: number,
  opts: { act?: ActCode; beta?: 0 | 1; ldx?: number; ldo?: number } = {},
): void {
  const [N, K] = w.shape;
  gemmNT(
    rt,
    rows,
    N,
    K,
    x,
    opts.ldx ?? K,
    w.ptr,
    out,
    opts.ldo ?? N,
    b ? b.ptr : 0,
    opts.beta ?? 0,
    opts.act ?? Act.none,
  );
}

/**
 * `C[M, N] = act(A[M, K] · W[N, K]ᵀ + bias + beta · C)` — GEMM with a `[out, in]` weight. A few rows
 * (2 ≤ M ≤ 8) against a large weight run as M single-row products: core's M = 1 path streams the
 * weight through row dots, while its packed path re-packs the whole weight on every call, which
 * costs more than reading it M times (measured 3.5× slower at M = 2 for a 1024×256 weight). This is
 * the shape of recurrent steps with a small batch and of incremental decoding.
 */
export function gemmNT(
  rt: Runtime,
  M: number,
  N: number,
  K: number,
  a: number,
  lda: number,
  w: number,
  c: number,
  ldc: number,
  bias: number,
  beta: number,
  act: number,
): void {
  if (M >= 2 && M <= 8 && N * K >= 16384) {
    for (let i = 0; i < M; i++)
      rt.k.gemm(1, N, K, a + i * lda * 4, lda, 0, w, K, 1, c + i * ldc * 4, ldc, bias, 1, beta, act);
    return;
  }
  rt.k.gemm(M, N, K, a, lda, 0, w, K, 1, c, ldc, bias, 1, beta, act);
}

export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param | undefined;
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** Training mode: the input of each forward not yet backpropagated. */
  private readonly saved: Tensor<"f32">[] = [];

  constructor(
    scope: WeightScope,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.weight = scope.get("weight", [outFeatures, inFeatures]);
    this.bias = opts.bias === false ? undefined : scope.get("bias", [outFeatures]);
  }

  /** Pointer form: `out[rows, out] = act(x[rows, in]·Wᵀ + b (+ out if beta = 1))`. */
  run(x: number, rows: number, out: number, act: ActCode = Act.none, beta: 0 | 1 = 0): void {
    this.life.check("Linear");
    linear(this.rt, x, rows, this.weight, this.bias, out, { act, beta });
  }

  /** `x [..., in]` → `[..., out]`. */
  forward(x: Tensor): Tensor<"f32"> {
    this.life.check("Linear");
    if (x.ndim < 1) expectShape(x, [this.inFeatures], "Linear input");
    expectShape(x, [...x.shape.slice(0, -1).map(() => -1), this.inFeatures], "Linear input");
    const rows = x.size / this.inFeatures;
    return scratch(this.rt, () => {
      const xp = putF32(this.rt, x, "Linear input");
      const out = this.rt.heap.allocF32(rows * this.outFeatures);
      this.run(xp, rows, out);
      if (this.training) this.saved.push(x as Tensor<"f32">); // once the forward succeeded
      return readF32(this.rt, out, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }

  protected override ownParams(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /**
   * Backward of the latest training forward: `dW += dyᵀ·x`, `db += Σ_rows dy`; returns `dx = dy·W`
   * (`[..., in]`).
   */
  backward(dy: Tensor): Tensor<"f32"> {
    const { inFeatures: K, outFeatures: N, rt } = this;
    const x = this.popRecord(this.saved, "Linear", (x) =>
      expectShape(dy, [...x.shape.slice(0, -1), N], "Linear.backward dy"),
    );
    const rows = x.size / K;
    return scratch(rt, () => {
      const px = putF32(rt, x, "Linear input");
      const pg = putF32(rt, dy, "Linear.backward dy");
      const dx = rt.heap.allocF32(x.size);
      if (rows > 0) {
        rt.k.gemm(rows, K, N, pg, N, 0, this.weight.ptr, K, 0, dx, K, 0, 1, 0, Act.none);
        rt.k.gemm(N, K, rows, pg, N, 1, px, K, 0, this.gradOf(this.weight), K, 0, 1, 1, Act.none);
        if (this.bias) rt.k.biasGrad(this.gradOf(this.bias), pg, rows, N, N);
      }
      return readF32(rt, dx, x.shape);
    });
  }

  /**
   * Free the wasm memory of the module tree this Linear was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}
