/**
 * `torch.nn.Embedding`: `out[..., :] = weight[ids[...], :]`, weight `[num_embeddings, dim]`.
 * https://pytorch.org/docs/stable/generated/torch.nn.Embedding.html
 */
import { InputError, type Runtime, ShapeError, type Tensor } from "@wasmformer/core";
import { Module } from "./module.js";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, fmtShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

export class Embedding extends Module {
  readonly weight: Param;
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** Training mode: the ids of each forward not yet backpropagated. */
  private readonly saved: Tensor[] = [];

  constructor(
    scope: WeightScope,
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super();
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
      if (this.training) this.saved.push(ids);
      return readF32(this.rt, out, [...ids.shape, this.dim]);
    });
  }

  protected override ownParams(): Param[] {
    return [this.weight];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /**
   * Backward of the latest training forward: scatter-add `dW[ids[t]] += dy[t]` (repeated ids
   * accumulate; a weight shared with an output projection gets the sum of both uses).
   * `dy [...ids.shape, dim]`. The ids have no gradient.
   */
  backward(dy: Tensor): void {
    const ids = this.popRecord(this.saved, "Embedding", (ids) =>
      expectShape(dy, [...ids.shape, this.dim], "Embedding.backward dy"),
    );
    const rt = this.rt;
    scratch(rt, () => {
      const ip = rt.heap.put(ids.data as Int32Array);
      const pg = putF32(rt, dy, "Embedding.backward dy");
      // ids were checked by the forward
      rt.k.embeddingBackward(this.gradOf(this.weight), this.numEmbeddings, this.dim, ip, ids.size, pg, -1);
    });
  }

  /**
   * Free the wasm memory of the module tree this Embedding was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}
