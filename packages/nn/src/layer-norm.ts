/**
 * `torch.nn.LayerNorm` over the last axis: `y = (x − mean) / sqrt(var + eps) · weight + bias`,
 * biased variance. https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html
 */
import type { Runtime, Tensor } from "@wasmformer/core";
import { Module } from "./module.js";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

export class LayerNorm extends Module {
  readonly weight: Param;
  readonly bias: Param;
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** Training mode: the input of each forward not yet backpropagated. */
  private readonly saved: Tensor<"f32">[] = [];

  constructor(
    scope: WeightScope,
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.weight = scope.get("weight", [dim]);
    this.bias = scope.get("bias", [dim]);
  }

  /** Pointer form, `rows` rows of `dim` floats; `y` may equal `x`. */
  run(x: number, rows: number, y: number): void {
    this.life.check("LayerNorm");
    this.rt.k.layerNorm(x, y, rows, this.dim, this.weight.ptr, this.bias.ptr, this.eps);
  }

  forward(x: Tensor): Tensor<"f32"> {
    this.life.check("LayerNorm");
    expectShape(x, [...x.shape.slice(0, -1).map(() => -1), this.dim], "LayerNorm input");
    return scratch(this.rt, () => {
      const p = putF32(this.rt, x, "LayerNorm input");
      this.run(p, x.size / this.dim, p);
      if (this.training) this.saved.push(x as Tensor<"f32">); // once the forward succeeded
      return readF32(this.rt, p, x.shape);
    });
  }

  protected override ownParams(): Param[] {
    return [this.weight, this.bias];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /**
   * Backward of the latest training forward (statistics recomputed from the saved input):
   * `dweight += Σ dy ⊙ x̂`, `dbias += Σ dy`; returns `dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))`, g = dy ⊙ weight.
   */
  backward(dy: Tensor): Tensor<"f32"> {
    const x = this.popRecord(this.saved, "LayerNorm", (x) => expectShape(dy, x.shape, "LayerNorm.backward dy"));
    const rt = this.rt;
    return scratch(rt, () => {
      const px = putF32(rt, x, "LayerNorm input");
      const pg = putF32(rt, dy, "LayerNorm.backward dy");
      const dx = rt.heap.allocF32(x.size);
      const rows = x.size / this.dim;
      const w = this.weight;
      rt.k.layerNormBackward(dx, this.gradOf(w), this.gradOf(this.bias), pg, px, w.ptr, 0, 0, rows, this.dim, this.eps);
      return readF32(rt, dx, x.shape);
    });
  }

  /**
   * Free the wasm memory of the module tree this LayerNorm was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}
