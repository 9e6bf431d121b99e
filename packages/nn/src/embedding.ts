/**
 * `torch.nn.Embedding`: `out[..., :] = weight[ids[...], :]`, weight `[num_embeddings, dim]`.
 * https://pytorch.org/docs/stable/generated/torch.nn.Embedding.html
 */
import { InputError, type Runtime, ShapeError, type Tensor } from "@wasmformer/core";
import type { Param, WeightScope } from "./state-dict.js";
import { fmtShape, type ModuleLife, readF32, scratch } from "./util.js";

export class Embedding {
  readonly weight: Param;
  readonly rt: Runtime;
  private readonly life: ModuleLife;

  constructor(
    scope: WeightScope,
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    this.rt = scope.rt;
    this.life = scope.life;
    this.weight = scope.get("weight", [numEmbeddings, dim]);
  }

  /** Pointer form: `out[n, dim]` from `n` i32 ids at `ids`; an id out of range is an InputError. */
  run(ids: number, n: number, out: number, what = "ids"): void {
    this.life.check("Embedding");
    const bad = this.rt.k.gather(this.weight.ptr, this.numEmbeddings, this.dim, ids, n, out);
    if (bad >= 0) {
      const id = this.rt.heap.i32(ids, n)[bad];
      throw new InputError(`${what}: id ${id} at flat position ${bad} is outside [0, ${this.numEmbeddings})`);
    }
  }

  /** `ids` (i32, any shape) → f32 `[...ids.shape, dim]`. */
  forward(ids: Tensor): Tensor<"f32"> {
    this.life.check("Embedding");
    if (ids.dtype !== "i32") throw new ShapeError(`Embedding ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
    return scratch(this.rt, () => {
      const ip = this.rt.heap.put(ids.data as Int32Array);
      const out = this.rt.heap.allocF32(ids.size * this.dim);
      this.run(ip, ids.size, out);
      return readF32(this.rt, out, [...ids.shape, this.dim]);
    });
  }

  /**
   * Free the wasm memory of the module tree this Embedding was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}
