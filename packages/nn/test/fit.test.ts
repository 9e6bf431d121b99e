// fit(): shuffling from a seed, accumulation, clipping, schedules, validation metrics, callbacks,
// early stopping, abort, and non-finite losses, on a softmax regression whose loss and gradient
// are computed here in float64.
import { AbortError, createRefRuntime, InputError, type Runtime } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import {
  type BatchResult,
  evaluate,
  fit,
  linearWithWarmup,
  SGD,
  type Trainable,
  type TrainParam,
} from "../src/index.js";
import { rng } from "./helpers.js";

interface Example {
  x: number[];
  y: number;
}

/** Softmax regression: logits = W x + b, mean cross-entropy. */
class Softmax implements Trainable<Example> {
  readonly runtime: Runtime = createRefRuntime();
  readonly w: TrainParam;
  readonly b: TrainParam;
  calls = 0;
  poison: number | undefined; // the call at which the loss becomes NaN

  constructor(
    readonly D: number,
    readonly C: number,
    seed = 1,
  ) {
    const r = rng(seed);
    const put = (name: string, n: number): TrainParam => ({
      name,
      ptr: this.runtime.heap.put(Float32Array.from({ length: n }, () => (r.next() - 0.5) * 0.2)),
      grad: this.runtime.heap.allocF32(n),
      size: n,
    });
    this.w = put("weight", C * D);
    this.b = put("bias", C);
  }
  parameters() {
    return [this.w, this.b];
  }
  snapshot() {
    return [this.w, this.b].map((p) => Array.from(this.runtime.heap.f32(p.ptr, p.size)));
  }
  lossAndGrad(batch: readonly Example[], scale: number): BatchResult {
    this.calls++;
    const { D, C } = this;
    const h = this.runtime.heap;
    const W = h.f32(this.w.ptr, C * D);
    const bias = h.f32(this.b.ptr, C);
    const gW = h.f32(this.w.grad, C * D);
    const gb = h.f32(this.b.grad, C);
    let loss = 0;
    let correct = 0;
    for (const { x, y } of batch) {
      const z = Array.from({ length: C }, (_, c) => bias[c] + x.reduce((s, xi, i) => s + xi * W[c * D + i], 0));
      const mx = Math.max(...z);
      const lse = mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0));
      loss += lse - z[y];
      if (z.indexOf(mx) === y) correct++;
      if (scale !== 0) {
        for (let c = 0; c < C; c++) {
          const d = ((Math.exp(z[c] - lse) - (c === y ? 1 : 0)) / batch.length) * scale;
          gb[c] += d;
          for (let i = 0; i < D; i++) gW[c * D + i] += d * x[i];
        }
      }
    }
    const mean = this.calls === this.poison ? Number.NaN : loss / batch.length;
    return { loss: mean, count: batch.length, correct };
  }
}

function data(n: number, D: number, C: number, seed: number): Example[] {
  const r = rng(seed);
  const centers = Array.from({ length: C }, () => Array.from({ length: D }, () => 4 * (r.next() - 0.5)));
  return Array.from({ length: n }, (_, i) => {
    const y = i % C;
    return { x: centers[y].map((c) => c + (r.next() - 0.5)), y };
  });
}

const all = data(90, 4, 3, 11);
const train = all.slice(0, 60);
const val = all.slice(60);

describe("fit", () => {
  test("the loss falls, validation metrics are reported, and the same seed gives the same run", async () => {
    const runs = [];
    for (let k = 0; k < 2; k++) {
      const m = new Softmax(4, 3);
      const logs: number[] = [];
      const res = await fit(m, train, {
        optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.5, momentum: 0.9 }),
        epochs: 6,
        batchSize: 8,
        seed: 5,
        validation: val,
        onBatchEnd: (l) => {
          logs.push(l.loss);
          return undefined;
        },
      });
      runs.push({ res, logs, params: m.snapshot() });
    }
    const { res } = runs[0];
    expect(res.stopped).toBe("epochs");
    expect(res.history).toHaveLength(6);
    expect(res.steps).toBe(6 * Math.ceil(60 / 8));
    expect(res.history[5].loss).toBeLessThan(res.history[0].loss * 0.5);
    const last = res.history[5];
    expect(last.valAccuracy).toBeGreaterThan(0.9);
    expect(last.valPerplexity).toBeCloseTo(Math.exp(last.valLoss as number), 12);
    expect(runs[1].logs).toEqual(runs[0].logs);
    expect(runs[1].params).toEqual(runs[0].params);
    // another seed shuffles differently
    const m = new Softmax(4, 3);
    const other: number[] = [];
    await fit(m, train, {
      optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.5, momentum: 0.9 }),
      batchSize: 8,
      seed: 6,
      onBatchEnd: (l) => {
        other.push(l.loss);
        return undefined;
      },
    });
    expect(other).not.toEqual(runs[0].logs.slice(0, other.length));
  });

  test("two accumulated micro-batches of 4 make the same step as one batch of 8", async () => {
    const a = new Softmax(4, 3);
    const b = new Softmax(4, 3);
    const set = train.slice(0, 16);
    await fit(a, set, { optimizer: new SGD(a.runtime, a.parameters(), { lr: 0.3 }), batchSize: 8, shuffle: false });
    const r = await fit(b, set, {
      optimizer: new SGD(b.runtime, b.parameters(), { lr: 0.3 }),
      batchSize: 4,
      accumulate: 2,
      shuffle: false,
    });
    expect(r.steps).toBe(2);
    const [pa, pb] = [a.snapshot().flat(), b.snapshot().flat()];
    for (let i = 0; i < pa.length; i++) expect(pb[i]).toBeCloseTo(pa[i], 6);
  });

  test("a schedule sets the learning rate per step; clipping reports the gradient norm", async () => {
    const m = new Softmax(4, 3);
    const lrs: number[] = [];
    const norms: number[] = [];
    await fit(m, train, {
      optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.2 }),
      batchSize: 10,
      epochs: 2,
      schedule: linearWithWarmup(2, 12),
      clipGradNorm: 0.5,
      onBatchEnd: (l) => {
        lrs.push(l.lr);
        norms.push(l.gradNorm as number);
        return undefined;
      },
    });
    expect(lrs.slice(0, 4).map((x) => +x.toFixed(6))).toEqual([0, 0.1, 0.2, 0.18]);
    expect(norms.every((n) => n > 0 && Number.isFinite(n))).toBe(true);
  });

  test("timers run while training (the loop yields between steps)", async () => {
    const m = new Softmax(4, 3);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await fit(m, train, { optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.1 }), batchSize: 2, epochs: 2 });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(5);
  });

  test("abort rejects with AbortError and leaves the parameters of the last completed step", async () => {
    const m = new Softmax(4, 3);
    const ctl = new AbortController();
    let after: number[][] = [];
    const run = fit(m, train, {
      optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.1 }),
      batchSize: 4,
      epochs: 3,
      signal: ctl.signal,
      onBatchEnd: (l) => {
        after = m.snapshot();
        if (l.step === 3) ctl.abort(new Error("user stop"));
        return undefined;
      },
    });
    await expect(run).rejects.toThrow(AbortError);
    await expect(run).rejects.toThrow(/after 3 steps.*user stop/);
    expect(m.snapshot()).toEqual(after);
    // the model is still usable
    expect(Number.isFinite(evaluate(m, val).loss)).toBe(true);
  });

  test("a NaN loss stops training with a typed error before any parameter is changed by it", async () => {
    const m = new Softmax(4, 3);
    m.poison = 3;
    let before: number[][] = [];
    const run = fit(m, train, {
      optimizer: new SGD(m.runtime, m.parameters(), { lr: 0.1 }),
      batchSize: 4,
      shuffle: false,
      onBatchEnd: () => {
        before = m.snapshot();
        return undefined;
      },
    });
    await expect(run).rejects.toThrow(InputError);
    const stranger = { name: "other.weight", ptr: m.w.ptr, grad: m.w.grad, size: 1 };
    await expect(
      fit(new Softmax(4, 3), train, { optimizer: new SGD(m.runtime, [stranger], { lr: 0.1 }) }),
    ).rejects.toThrow(/"other.weight" is not one of the model's/);
    expect(m.snapshot()).toEqual(before);
    // skip mode steps over it
    const s = new Softmax(4, 3);
    s.poison = 2;
    const r = await fit(s, train, {
      optimizer: new SGD(s.runtime, s.parameters(), { lr: 0.1 }),
      batchSize: 4,
      onNonFinite: "skip",
    });
    expect(r.steps).toBe(Math.ceil(60 / 4) - 1);
  });

  test("early stopping stops after `patience` epochs without improvement and can restore the best", async () => {
    const m = new Softmax(4, 3);
    let epochs = 0;
    const res = await fit(m, train, {
      optimizer: new SGD(m.runtime, m.parameters(), { lr: 5, momentum: 0.99 }), // diverges: validation gets worse
      batchSize: 60,
      epochs: 50,
      validation: val,
      earlyStopping: { patience: 2, restoreBest: true },
      onEpochEnd: () => {
        epochs++;
        return undefined;
      },
    });
    expect(res.stopped).toBe("early_stopping");
    expect(epochs).toBeLessThan(50);
    const bestVal = Math.min(...res.history.map((h) => h.valLoss as number));
    expect(evaluate(m, val).loss).toBeCloseTo(bestVal, 5);
  });

  test("a callback returning false stops; bad options are typed errors", async () => {
    const m = new Softmax(4, 3);
    const opt = new SGD(m.runtime, m.parameters(), { lr: 0.1 });
    const r = await fit(m, train, { optimizer: opt, batchSize: 4, onBatchEnd: (l) => l.step < 2 });
    expect(r).toMatchObject({ stopped: "callback", steps: 2 });
    await expect(fit(m, train, { optimizer: opt, epochs: 0 })).rejects.toThrow(/epochs must be a positive integer/);
    await expect(fit(m, train, { optimizer: opt, batchSize: 1.5 })).rejects.toThrow(/batchSize/);
    await expect(fit(m, [], { optimizer: opt })).rejects.toThrow(/no training examples/);
    await expect(fit(m, train, { optimizer: opt, clipGradNorm: -1 })).rejects.toThrow(/clipGradNorm/);
    await expect(fit(m, train, { optimizer: opt, earlyStopping: { patience: 0 } })).rejects.toThrow(/patience/);
  });
});
