/**
 * `torch.nn.Linear`: `y = x · Wᵀ + b`, weight `[out, in]`, bias `[out]`.
 * https://pytorch.org/docs/stable/generated/torch.nn.Linear.html
 *
 * The weight is used as stored: it is GEMM's B operand with `transB = 1`, no transpose at load.
 */
import { Act, type ActCode, type Runtime, type Tensor } from "@wasmformer/core";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, putF32, readF32, scratch } from "./util.js";

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
  rt.k.gemm(
    rows,
    N,
    K,
    x,
    opts.ldx ?? K,
    0,
    w.ptr,
    K,
    1,
    out,
    opts.ldo ?? N,
    b ? b.ptr : 0,
    1,
    opts.beta ?? 0,
    opts.act ?? Act.none,
  );
}

export class Linear {
  readonly weight: Param;
  readonly bias: Param | undefined;
  readonly rt: Runtime;

  constructor(
    scope: WeightScope,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    this.rt = scope.rt;
    this.weight = scope.get("weight", [outFeatures, inFeatures]);
    this.bias = opts.bias === false ? undefined : scope.get("bias", [outFeatures]);
  }

  /** Pointer form: `out[rows, out] = act(x[rows, in]·Wᵀ + b (+ out if beta = 1))`. */
  run(x: number, rows: number, out: number, act: ActCode = Act.none, beta: 0 | 1 = 0): void {
    linear(this.rt, x, rows, this.weight, this.bias, out, { act, beta });
  }

  /** `x [..., in]` → `[..., out]`. */
  forward(x: Tensor): Tensor<"f32"> {
    if (x.ndim < 1) expectShape(x, [this.inFeatures], "Linear input");
    expectShape(x, [...x.shape.slice(0, -1).map(() => -1), this.inFeatures], "Linear input");
    const rows = x.size / this.inFeatures;
    return scratch(this.rt, () => {
      const xp = putF32(this.rt, x, "Linear input");
      const out = this.rt.heap.allocF32(rows * this.outFeatures);
      this.run(xp, rows, out);
      return readF32(this.rt, out, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }
}
