/**
 * The training switch every nn module shares (PyTorch's `nn.Module` part that matters here):
 *
 * - `train()` / `eval()`: in training mode a module's `forward` also keeps what its `backward`
 *   needs (llm.c style: the input, ids, states), one record per call; in eval mode (the default
 *   after loading) nothing is kept and inference runs its usual code path.
 * - `backward(dy)` consumes the record of the latest forward not yet backpropagated (last in,
 *   first out), **adds** the parameter gradients into the `grad` buffers and returns the
 *   gradient of the input(s). Call backwards in the reverse order of the forwards.
 * - `parameters()`: every trainable tensor of the module and its children as `TrainParam`s
 *   (name = the full PyTorch state-dict name, values at `ptr`, gradient at `grad`, `size` floats,
 *   in the module tree's heap); their gradient buffers are allocated by the first `train()`.
 * - `zeroGrad()` sets those gradients to 0 (`zero_grad(set_to_none=False)`).
 */
import { InputError, type Runtime } from "@wasmformer/core";
import type { TrainParam } from "./optim.js";
import type { Param } from "./state-dict.js";
import type { ModuleLife } from "./util.js";

export abstract class Module {
  /** Whether `forward` keeps what `backward` needs (see the module comment). */
  training = false;
  abstract readonly rt: Runtime;
  protected abstract readonly life: ModuleLife;

  /** The tensors this module owns (not its children's). */
  protected ownParams(): Param[] {
    return [];
  }

  /** Sub-modules, in state-dict order. */
  protected children(): Module[] {
    return [];
  }

  /** Hook: the mode changed (modules drop their saved records here). */
  protected onMode(_training: boolean): void {}

  /** Switch this module and its children to training mode (`train(false)` = `eval()`). */
  train(on = true): this {
    this.life.check(this.constructor.name);
    this.training = on;
    this.onMode(on);
    for (const c of this.children()) c.train(on);
    if (on) this.parameters();
    return this;
  }

  /** Inference mode: nothing is kept for a backward. */
  eval(): this {
    return this.train(false);
  }

  /** Every trainable tensor of the tree below this module, each once, in state-dict order. */
  parameters(): TrainParam[] {
    this.life.check(this.constructor.name);
    const out: TrainParam[] = [];
    const seen = new Set<string>();
    const add = (p: TrainParam) => {
      if (!seen.has(p.name)) {
        seen.add(p.name);
        out.push(p);
      }
    };
    for (const p of this.ownParams()) add(this.life.trainParam(p.name, p.ptr, sizeOf(p.shape)));
    for (const c of this.children()) for (const p of c.parameters()) add(p);
    return out;
  }

  /** Set every parameter gradient to 0. */
  zeroGrad(): void {
    for (const p of this.parameters()) this.rt.k.fill(p.grad, p.size, 0);
  }

  /** The gradient buffer of one of this module's weights. */
  protected gradOf(p: Param): number {
    return this.life.trainParam(p.name, p.ptr, sizeOf(p.shape)).grad;
  }

  /**
   * Pop the latest forward record for a backward (an InputError when there is none). `check`
   * validates the upstream gradient against it first: a bad gradient leaves the record in place.
   */
  protected popRecord<T>(tape: T[], what: string, check?: (r: T) => void): T {
    this.life.check(what);
    const r = tape.at(-1);
    if (r === undefined) {
      throw new InputError(
        `${what}.backward: no forward record to backpropagate (call train() before forward, one backward per forward)`,
      );
    }
    check?.(r);
    tape.pop();
    return r;
  }
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}
