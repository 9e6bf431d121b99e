/**
 * `torch.nn.LayerNorm` over the last axis: `y = (x − mean) / sqrt(var + eps) · weight + bias`,
 * biased variance. https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html
 */
import type { Runtime, Tensor } from "@wasmformer/core";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

export class LayerNorm {
  readonly weight: Param;
  readonly bias: Param;
  readonly rt: Runtime;
  private readonly life: ModuleLife;

  constructor(
    scope: WeightScope,
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
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
      return readF32(this.rt, p, x.shape);
    });
  }

  /**
   * Free the wasm memory of the module tree this LayerNorm was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}
