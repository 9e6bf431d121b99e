// fit() keeps its place (parameters, gradients, optimizer state) across its awaits: a second fit()
// on the same model or optimizer while one runs — concurrently or from a callback — is a BusyError
// that changes nothing, and the first run gives exactly the answer it gives alone.
import { BusyError, createRefRuntime, InputError, type Runtime } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { type BatchResult, fit, SGD, type Trainable, type TrainParam } from "../src/index.js";
import { rng } from "./helpers.js";

interface Ex {
  x: number[];
  y: number;
}

/** Least squares y ≈ w·x + b, gradient in float64 here. */
class Regression implements Trainable<Ex> {
  readonly runtime: Runtime = createRefRuntime();
  readonly w: TrainParam;
  readonly b: TrainParam;
  constructor(readonly D: number) {
    const put = (name: string, n: number): TrainParam => ({
      name,
      ptr: this.runtime.heap.put(new Float32Array(n).fill(0.1)),
      grad: this.runtime.heap.allocF32(n),
      size: n,
    });
    this.w = put("w", D);
    this.b = put("b", 1);
  }
  parameters() {
    return [this.w, this.b];
  }
  snapshot() {
    return [this.w, this.b].map((p) => Array.from(this.runtime.heap.f32(p.ptr, p.size)));
  }
  lossAndGrad(batch: readonly Ex[], scale: number): BatchResult {
    const h = this.runtime.heap;
    const w = h.f32(this.w.ptr, this.D);
    const b = h.f32(this.b.ptr, 1);
    const gw = h.f32(this.w.grad, this.D);
    const gb = h.f32(this.b.grad, 1);
    let loss = 0;
    for (const { x, y } of batch) {
      const e = x.reduce((s, xi, i) => s + xi * w[i]!, b[0]!) - y;
      loss += e * e;
      const d = ((2 * e) / batch.length) * scale;
      for (let i = 0; i < this.D; i++) gw[i]! += d * x[i]!;
      gb[0]! += d;
    }
    return { loss: loss / batch.length, count: batch.length };
  }
}

const r = rng(3);
const set = (n: number) =>
  Array.from({ length: n }, () => {
    const x = [r.next() - 0.5, r.next() - 0.5, r.next() - 0.5];
    return { x, y: 2 * x[0]! - x[1]! + 0.5 * x[2]! + 0.3 };
  });
const A = set(40);
const B = set(24);
const opts = (m: Regression, seed: number) => ({
  optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.2, momentum: 0.5 }),
  epochs: 3,
  batchSize: 8,
  seed,
});

/** The reference: a fresh model trained on A, then on B, one after the other. */
async function sequential() {
  const m = new Regression(3);
  const a = await fit(m, A, opts(m, 1));
  const afterA = m.snapshot();
  const b = await fit(m, B, opts(m, 2));
  return { a, afterA, b, afterB: m.snapshot() };
}

describe("fit() on one model from two places", () => {
  test("a second concurrent fit is a BusyError; the first gives its sequential result; then training goes on", async () => {
    const want = await sequential();
    const m = new Regression(3);
    const [a, b] = await Promise.allSettled([fit(m, A, opts(m, 1)), fit(m, B, opts(m, 2))]);
    expect(b.status).toBe("rejected");
    const err = (b as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(BusyError);
    expect(err.message).toMatch(/^fit: this model is being trained by another fit\(\) call/);
    expect((a as PromiseFulfilledResult<unknown>).value).toEqual(want.a);
    expect(m.snapshot()).toEqual(want.afterA);
    // the model is free again once the first one has finished
    expect(await fit(m, B, opts(m, 2))).toEqual(want.b);
    expect(m.snapshot()).toEqual(want.afterB);
  });

  test("a fit started from a callback of a running fit is a BusyError; the running one is unaffected", async () => {
    const want = await sequential();
    const m = new Regression(3);
    const errors: unknown[] = [];
    const res = await fit(m, A, {
      ...opts(m, 1),
      onBatchEnd: async () => {
        await fit(m, B, opts(m, 2)).catch((e) => errors.push(e));
        return undefined;
      },
    });
    expect(errors.length).toBe(res.steps);
    for (const e of errors) expect(e).toBeInstanceOf(BusyError);
    expect(res).toEqual(want.a);
    expect(m.snapshot()).toEqual(want.afterA);
  });

  test("one optimizer in two fits (two views of the same parameters) is a BusyError naming the optimizer", async () => {
    const m = new Regression(3);
    const view: Trainable<Ex> = {
      runtime: m.runtime,
      parameters: () => m.parameters(),
      lossAndGrad: (batch, scale) => m.lossAndGrad(batch, scale),
    };
    const o = opts(m, 1);
    const first = fit(m, A, o);
    await expect(fit(view, B, { ...o, seed: 2 })).rejects.toThrow(/^fit: this optimizer is being trained/);
    await first;
  });

  test("a fit that fails on its options leaves the model free; missing options are an InputError", async () => {
    const m = new Regression(3);
    await expect(fit(m, A, { ...opts(m, 1), epochs: 0 })).rejects.toThrow(InputError);
    await expect(fit(m, A, undefined as never)).rejects.toThrow(/fit: options \{ optimizer, … \} are required/);
    await expect(fit(m, A, opts(m, 1))).resolves.toMatchObject({ stopped: "epochs" });
  });
});
