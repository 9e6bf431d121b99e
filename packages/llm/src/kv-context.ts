/**
 * KV contexts: one model, several sequences in flight (two `generate()` iterators, a `forward()`
 * between two steps of a generation, the model's own `prefill`/`decode` sequence). Each sequence
 * is a `KVContext`; the model's KV cache memory is a working area that holds one of them at a time
 * (the resident context). A step for another context first saves the resident one's filled slots
 * and restores the incoming one's:
 *
 * ```
 * save:     for each layer l, row b < batch:  saved.k[l, b, 0:len, :] = kCache[l, b, 0:len, :]  (same for v)
 * restore:  the reverse, then len, batch, padding (and the key-padding mask rebuilt from it)
 * ```
 *
 * Every step is synchronous, so a step never sees another context's slots: interleaved sequences
 * compute exactly what they compute one after another. Nothing is copied while one sequence runs
 * alone.
 */
import { DisposedError, type Runtime } from "@wasmformer/core";

/** The sequence state of a context: slots [0, len) of `batch` rows are filled; `pad[b]` leading padding slots per row. */
export interface SequenceState {
  len: number;
  batch: number;
  pad: Int32Array;
}

/**
 * One logical KV cache of a model (see `GPT2LMHeadModel.createContext`): pass it as `context` to
 * `prefill`/`decode`/`extend` to run a sequence of its own. Opaque; give it back with
 * `releaseContext` when done.
 */
export class KVContext {
  /** @internal state while not resident (the model's working fields hold it while resident) */
  state: SequenceState;
  /** @internal filled slots while not resident: [L, batch, len, E] floats each (capacity may exceed) */
  k: Float32Array | undefined;
  /** @internal */
  v: Float32Array | undefined;
  /** @internal */
  released = false;
  /** @internal the model it belongs to */
  readonly owner: object;

  constructor(owner: object, maxBatch: number) {
    this.owner = owner;
    this.state = { len: 0, batch: 0, pad: new Int32Array(maxBatch) };
  }

  /** Throws once the context has been released. @internal */
  check(): void {
    if (this.released) throw new DisposedError("this KV context (released with releaseContext)");
  }
}

/** Where a model's KV cache lives: `(layers, maxBatch, positions, width)` f32 each for keys and values, plus the `(maxBatch, positions)` u8 key-padding mask. */
export interface CacheLayout {
  runtime: Runtime;
  kCache: number;
  vCache: number;
  kpm: number;
  layers: number;
  maxBatch: number;
  positions: number;
  width: number;
}

const F32 = 4;

/** Copy the live cache's filled slots and `state` into `ctx` (it stops being resident). */
export function saveContext(c: CacheLayout, state: SequenceState, ctx: KVContext): void {
  const { len, batch } = state;
  ctx.state = { len, batch, pad: state.pad.slice() };
  const n = c.layers * batch * len * c.width;
  if (n === 0) return;
  if (!ctx.k || ctx.k.length < n) {
    ctx.k = new Float32Array(n);
    ctx.v = new Float32Array(n);
  }
  const heap = c.runtime.heap;
  const rowBytes = c.positions * c.width * F32;
  const slice = len * c.width;
  for (let l = 0; l < c.layers; l++) {
    for (let b = 0; b < batch; b++) {
      const off = (l * c.maxBatch + b) * rowBytes;
      const at = (l * batch + b) * slice;
      ctx.k.set(heap.f32(c.kCache + off, slice), at);
      ctx.v!.set(heap.f32(c.vCache + off, slice), at);
    }
  }
}

/** Put `ctx`'s saved slots back into the live cache and return its state (it becomes resident). */
export function restoreContext(c: CacheLayout, ctx: KVContext): SequenceState {
  const { len, batch, pad } = ctx.state;
  const heap = c.runtime.heap;
  const rowBytes = c.positions * c.width * F32;
  const slice = len * c.width;
  if (ctx.k && ctx.v && slice > 0) {
    for (let l = 0; l < c.layers; l++) {
      for (let b = 0; b < batch; b++) {
        const off = (l * c.maxBatch + b) * rowBytes;
        const at = (l * batch + b) * slice;
        heap.f32(c.kCache + off, slice).set(ctx.k.subarray(at, at + slice));
        heap.f32(c.vCache + off, slice).set(ctx.v.subarray(at, at + slice));
      }
    }
  }
  const P = c.positions;
  const kpm = heap.u8(c.kpm, c.maxBatch * P);
  kpm.fill(0);
  for (let b = 0; b < batch; b++) kpm.fill(1, b * P, b * P + pad[b]);
  ctx.k = undefined; // the live cache is the only copy now
  ctx.v = undefined;
  return { len, batch, pad };
}
