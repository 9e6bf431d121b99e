/**
 * A Keras-like training loop: `fit(model, examples, options)` runs epochs of shuffled mini-batches
 * (seeded), gradient accumulation, clipping, a learning-rate schedule, validation with metrics,
 * callbacks per batch and per epoch, early stopping and cancellation by `AbortSignal`.
 *
 * The model is anything `Trainable`: it owns its parameters (in a runtime heap, `TrainParam`) and
 * computes, for a batch of examples, the loss and its gradient *added* into the parameters'
 * gradient buffers (times `scale`, so that accumulated micro-batches average). `fit` never updates
 * a parameter from a non-finite loss or gradient: such a step stops training with an `InputError`
 * (or is skipped, with `onNonFinite: "skip"`), the parameters left as after the last good step.
 *
 * The loop yields to the event loop between steps, so it runs inside a Web Worker or a Node
 * process without blocking messages or timers, and gives the same losses in both for the same seed.
 *
 * @example
 * ```ts
 * const opt = new AdamW(model.runtime, model.parameters(), { lr: 1e-3 });
 * const h = await fit(model, trainSet, { optimizer: opt, epochs: 3, batchSize: 32, validation: valSet,
 *   onEpochEnd: (e) => console.log(e.epoch, e.loss, e.valLoss) });
 * ```
 */
import { AbortError, BusyError, InputError, mulberry32, type Runtime } from "@wasmformer/core";
import { clipGradNorm, type TrainParam } from "./optim.js";
import type { Schedule } from "./schedules.js";

/** What one forward (and backward) pass over a batch reports. */
export interface BatchResult {
  /** Mean loss over the batch's counted items (tokens or examples). */
  loss: number;
  /** Items the mean is over (labels not ignored). Weights the epoch means. */
  count: number;
  /** Items predicted right, when the model measures accuracy. */
  correct?: number;
}

/** A model `fit` can train. */
export interface Trainable<E> {
  readonly runtime: Runtime;
  /** Every trainable tensor (the optimizer's may be a subset: frozen ones are not updated). */
  parameters(): TrainParam[];
  /** Forward + backward: adds `scale · ∂loss/∂θ` into every parameter's gradient buffer. */
  lossAndGrad(batch: readonly E[], scale: number): BatchResult;
  /** Forward only (validation); defaults to `lossAndGrad` with scale 0 when absent. */
  evaluate?(batch: readonly E[]): BatchResult;
}

/** The optimizer part `fit` uses (`SGD`, `Adam`, `AdamW`). */
export interface FitOptimizer {
  lr: number;
  steps: number;
  params(): TrainParam[];
  step(): void;
}

export interface BatchLog {
  epoch: number;
  /** Batch index within the epoch. */
  batch: number;
  /** Optimizer steps taken so far. */
  step: number;
  loss: number;
  lr: number;
  /** Gradient norm before clipping (when `clipGradNorm` is set). */
  gradNorm?: number;
}

export interface EpochLog {
  epoch: number;
  loss: number;
  accuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  /** `exp(valLoss)`: the perplexity of a language model's validation set. */
  valPerplexity?: number;
}

export interface FitOptions<E> {
  optimizer: FitOptimizer;
  epochs?: number;
  batchSize?: number;
  /** Shuffle the examples every epoch (default true), from `seed` (default 0). */
  shuffle?: boolean;
  seed?: number;
  /** Micro-batches whose gradients are averaged into one optimizer step (default 1). */
  accumulate?: number;
  /** `clip_grad_norm_` over the optimizer's parameters before each step. */
  clipGradNorm?: number;
  /** Learning rate = base lr × schedule(step); the base is the optimizer's lr when `fit` starts. */
  schedule?: Schedule;
  validation?: readonly E[];
  /** Validation batch size (default `batchSize`). */
  validationBatchSize?: number;
  /** Stop when `valLoss` (else the training loss) has not improved by `minDelta` for `patience` epochs. */
  earlyStopping?: { patience: number; minDelta?: number; restoreBest?: boolean };
  /** A non-finite loss or gradient: stop with an `InputError` (default) or skip the step. */
  onNonFinite?: "throw" | "skip";
  /** Cancels training between steps: `fit` rejects with an `AbortError`; the model keeps the last step's parameters. */
  signal?: AbortSignal;
  /** Return `false` to stop after this batch. */
  onBatchEnd?: (log: BatchLog) => undefined | boolean | Promise<undefined | boolean>;
  onEpochEnd?: (log: EpochLog) => undefined | boolean | Promise<undefined | boolean>;
}

export interface FitResult {
  history: EpochLog[];
  /** Why training ended. */
  stopped: "epochs" | "early_stopping" | "callback";
  steps: number;
}

/** Mean loss (and accuracy) of `model` over `examples`, in batches, without touching gradients. */
export function evaluate<E>(model: Trainable<E>, examples: readonly E[], batchSize = 32): BatchResult {
  let loss = 0;
  let count = 0;
  let correct = 0;
  let haveCorrect = false;
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = examples.slice(i, i + batchSize);
    const r = model.evaluate ? model.evaluate(batch) : model.lossAndGrad(batch, 0);
    loss += r.loss * r.count;
    count += r.count;
    if (r.correct !== undefined) {
      correct += r.correct;
      haveCorrect = true;
    }
  }
  return { loss: count ? loss / count : Number.NaN, count, correct: haveCorrect ? correct : undefined };
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw new InputError(`fit: ${name} must be a positive integer, got ${String(x)}`);
  return x;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Models and optimizers a `fit` is training right now. */
const training = new WeakSet<object>();

/**
 * Train `model` on `examples`; see the module comment. One `fit` at a time per model and per
 * optimizer: the loop keeps its place (parameters, gradients, optimizer state, schedule) across
 * its awaits, so a second `fit` on either while one runs — concurrently, or from one of its
 * callbacks — is a `BusyError` and changes nothing (await the first one, then train again).
 */
export async function fit<E>(model: Trainable<E>, examples: readonly E[], opts: FitOptions<E>): Promise<FitResult> {
  if (typeof opts !== "object" || opts === null) throw new InputError("fit: options { optimizer, … } are required");
  const opt: unknown = opts.optimizer;
  for (const [what, o] of [
    ["model", model],
    ["optimizer", opt],
  ] as const) {
    if (typeof o === "object" && o !== null && training.has(o)) {
      throw new BusyError(`fit: this ${what} is being trained by another fit() call; await it before training again`);
    }
  }
  const held = [model, opt].filter((o): o is object => typeof o === "object" && o !== null);
  for (const o of held) training.add(o);
  try {
    return await fitOnce(model, examples, opts);
  } finally {
    for (const o of held) training.delete(o);
  }
}

async function fitOnce<E>(model: Trainable<E>, examples: readonly E[], opts: FitOptions<E>): Promise<FitResult> {
  const epochs = positiveInt("epochs", opts.epochs, 1);
  const batchSize = positiveInt("batchSize", opts.batchSize, 32);
  const accumulate = positiveInt("accumulate", opts.accumulate, 1);
  const valBatch = positiveInt("validationBatchSize", opts.validationBatchSize, batchSize);
  if (examples.length === 0) throw new InputError("fit: no training examples");
  if (opts.clipGradNorm !== undefined && !(opts.clipGradNorm > 0)) {
    throw new InputError(`fit: clipGradNorm must be > 0, got ${opts.clipGradNorm}`);
  }
  const es = opts.earlyStopping;
  if (es && (!Number.isInteger(es.patience) || es.patience < 1)) {
    throw new InputError(`fit: earlyStopping.patience must be a positive integer, got ${es.patience}`);
  }
  const opt = opts.optimizer;
  const rt = model.runtime;
  const all = model.parameters();
  const trained = opt.params();
  const known = new Set(all.map((p) => p.name));
  for (const p of trained) {
    if (!known.has(p.name))
      throw new InputError(`fit: the optimizer's parameter "${p.name}" is not one of the model's`);
  }
  const baseLr = opt.lr;
  const rand = mulberry32(opts.seed ?? 0);
  const order = examples.map((_, i) => i);
  const history: EpochLog[] = [];
  let best = Number.POSITIVE_INFINITY;
  let bestParams: Float32Array[] | undefined;
  let sinceBest = 0;
  let stopped: FitResult["stopped"] = "epochs";
  const zero = () => {
    for (const p of all) rt.k.fill(p.grad, p.size, 0);
  };
  const gradsFinite = () => trained.every((p) => rt.heap.f32(p.grad, p.size).every(Number.isFinite));

  outer: for (let epoch = 0; epoch < epochs; epoch++) {
    if (opts.shuffle ?? true) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    let sum = 0;
    let count = 0;
    let correct = 0;
    let haveCorrect = false;
    const nBatches = Math.ceil(order.length / batchSize);
    for (let b0 = 0; b0 < nBatches; b0 += accumulate) {
      if (opts.signal?.aborted) {
        const r = opts.signal.reason;
        throw new AbortError(
          `fit aborted after ${opt.steps} steps (the parameters are those of the last completed step)` +
            (r instanceof Error ? `: ${r.message}` : r !== undefined ? `: ${String(r)}` : ""),
        );
      }
      zero();
      const micro = Math.min(accumulate, nBatches - b0);
      let stepLoss = 0;
      let stepCount = 0;
      for (let m = 0; m < micro; m++) {
        const idx = order.slice((b0 + m) * batchSize, (b0 + m + 1) * batchSize);
        const r = model.lossAndGrad(
          idx.map((i) => examples[i]),
          1 / micro,
        );
        stepLoss += r.loss * r.count;
        stepCount += r.count;
        if (r.correct !== undefined) {
          correct += r.correct;
          haveCorrect = true;
        }
      }
      const loss = stepCount ? stepLoss / stepCount : 0;
      let gradNorm: number | undefined;
      if (Number.isFinite(loss) && opts.clipGradNorm !== undefined) {
        gradNorm = clipGradNorm(rt, trained, opts.clipGradNorm);
      }
      if (!Number.isFinite(loss) || !gradsFinite()) {
        const what = Number.isFinite(loss) ? "a gradient is not finite" : `the loss is ${loss}`;
        if ((opts.onNonFinite ?? "throw") === "throw") {
          throw new InputError(
            `fit: ${what} at epoch ${epoch}, batch ${b0} (step ${opt.steps + 1}); no parameter was updated by it`,
          );
        }
      } else {
        if (opts.schedule) opt.lr = baseLr * opts.schedule(opt.steps);
        opt.step();
        sum += stepLoss;
        count += stepCount;
      }
      const go = await opts.onBatchEnd?.({ epoch, batch: b0, step: opt.steps, loss, lr: opt.lr, gradNorm });
      await tick();
      if (go === false) {
        stopped = "callback";
        break outer;
      }
    }
    const log: EpochLog = { epoch, loss: count ? sum / count : Number.NaN };
    if (haveCorrect) log.accuracy = correct / order.length;
    if (opts.validation?.length) {
      const v = evaluate(model, opts.validation, valBatch);
      log.valLoss = v.loss;
      log.valPerplexity = Math.exp(v.loss);
      if (v.correct !== undefined) log.valAccuracy = v.correct / opts.validation.length;
    }
    history.push(log);
    const go = await opts.onEpochEnd?.(log);
    if (go === false) {
      stopped = "callback";
      break;
    }
    if (es) {
      const monitored = log.valLoss ?? log.loss;
      if (monitored < best - (es.minDelta ?? 0)) {
        best = monitored;
        sinceBest = 0;
        if (es.restoreBest) bestParams = trained.map((p) => rt.heap.f32(p.ptr, p.size).slice());
      } else if (++sinceBest >= es.patience) {
        stopped = "early_stopping";
        break;
      }
    }
  }
  if (bestParams) for (const [i, p] of trained.entries()) rt.heap.f32(p.ptr, p.size).set(bestParams[i]);
  return { history, stopped, steps: opt.steps };
}
