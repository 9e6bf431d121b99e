/**
 * Position information added to token embeddings: the fixed sinusoidal table of "Attention Is All
 * You Need" (as the Annotated Transformer's `PositionalEncoding`, FORMAT.md §6.6) and learned
 * absolute positions (an `Embedding` over positions, GPT-2/ViT style).
 *
 *   PE[p, j] = sin(p · w_k) for even j, cos(p · w_k) for odd j,  k = ⌊j/2⌋,  w_k = base^(−2k/d)
 */
import {
  BinOp,
  sinusoidalPositionalEncoding as coreSinusoidalPE,
  InputError,
  type Runtime,
  type Tensor,
} from "@wasmformer/core";
import type { Param, WeightScope } from "./state-dict.js";
import { type ModuleLife, posInt, sharedRuntime } from "./util.js";

/** The `[maxLen, dModel]` sinusoidal table, evaluated in float64 and rounded once to f32 (core's). */
export function sinusoidalPositionalEncoding(maxLen: number, dModel: number, base = 10000): Tensor<"f32"> {
  posInt(maxLen, "max_len", 0);
  posInt(dModel, "d_model");
  return coreSinusoidalPE(maxLen, dModel, base);
}

/** Adds `table[0:T]` to each sequence of `x [B, T, d]` in the heap (in place). */
function addRows(
  rt: Runtime,
  table: number,
  maxLen: number,
  d: number,
  x: number,
  B: number,
  T: number,
  what: string,
): void {
  if (T > maxLen) throw new InputError(`${what}: sequence length ${T} exceeds the ${maxLen} positions available`);
  for (let b = 0; b < B; b++) {
    const xb = x + b * T * d * 4;
    rt.k.binary(xb, table, xb, T, d, d, 1, BinOp.add);
  }
}

/**
 * The sinusoidal table as a layer: `addTo` adds `PE[0:T]` to a `[B, T, d]` activation in the heap.
 * The table is kept on the JS side (grown on demand) and copied into the caller's scratch.
 */
export class SinusoidalPositionalEncoding {
  private table: Float32Array = new Float32Array(0);
  private len = 0;
  readonly rt: Runtime;

  constructor(
    readonly dModel: number,
    readonly base = 10000,
    rt?: Runtime,
  ) {
    this.rt = sharedRuntime(rt);
  }

  /** The first `maxLen` rows `[maxLen, d]`. */
  rows(maxLen: number): Float32Array {
    if (maxLen > this.len) {
      const n = Math.max(maxLen, 2 * this.len, 64);
      this.table = sinusoidalPositionalEncoding(n, this.dModel, this.base).data;
      this.len = n;
    }
    return this.table.subarray(0, maxLen * this.dModel);
  }

  /** Pointer form: `x[B, T, d] += PE[offset : offset+T]` (allocates `T·d` floats of scratch). */
  addTo(x: number, B: number, T: number, offset = 0): void {
    const p = this.rt.heap.put(this.rows(offset + T).subarray(offset * this.dModel));
    addRows(this.rt, p, T, this.dModel, x, B, T, "positional encoding");
  }
}

/** Learned absolute positions: `weight [maxLen, d]` added to `x[:, 0:T]`. */
export class LearnedPositionalEmbedding {
  readonly weight: Param;
  readonly rt: Runtime;
  private readonly life: ModuleLife;
  constructor(
    scope: WeightScope,
    readonly maxLen: number,
    readonly dim: number,
  ) {
    this.rt = scope.rt;
    this.life = scope.life;
    this.weight = scope.get("weight", [maxLen, dim]);
  }
  /** Pointer form: `x[B, T, d] += weight[0:T]`. */
  addTo(x: number, B: number, T: number): void {
    this.life.check("LearnedPositionalEmbedding");
    addRows(this.rt, this.weight.ptr, this.maxLen, this.dim, x, B, T, "learned positions");
  }

  /**
   * Free the wasm memory of the module tree this LearnedPositionalEmbedding was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}
