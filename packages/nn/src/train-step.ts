/**
 * The `train_step` conformance kind (FORMAT.md §6.17): a model starts from stored parameters and is
 * trained for K steps on one fixed batch (mean cross-entropy, then SGD or AdamW, optionally with
 * `clip_grad_norm_`), reporting the losses, the first gradients and the parameters after K steps.
 *
 * The loop is the same for every model, so it lives here; each model family registers how it is
 * built from a case (`registerTrainStepModel`): nn registers `mlp` and `lstm_classifier`, llm
 * registers `gpt2`, vit registers `vit`, from their parity modules. A model is a `Trainable` whose
 * parameters are named as in `model.safetensors`.
 */
import { ConfigError, InputError, Tensor } from "@wasmformer/core";
import type { KindResult, ParityCase } from "@wasmformer/core/parity";
import type { Trainable } from "./fit.js";
import { AdamW, clipGradNorm, SGD } from "./optim.js";

/** The loss of §6.17: mean cross-entropy with these settings. */
export interface TrainStepLoss {
  ignoreIndex: number;
  labelSmoothing: number;
  /** Causal LMs: logits at t predict labels at t + 1. */
  shiftLabels: boolean;
}

/** A model built for a case: the trainable model and the one batch it is trained on. */
export interface TrainStepSetup<E = unknown> {
  model: Trainable<E>;
  batch: readonly E[];
  /** Every parameter's shape, by name (the expected tensors are compared with their shapes). */
  shapes: Record<string, readonly number[]>;
  /** Called when the case is done (e.g. `dispose()`), also after an error. */
  dispose?: () => void;
}

/** Builds a model family's `Trainable` from a case: `config.model_config`, `model.safetensors`, the io inputs. */
export type TrainStepBuilder = (c: ParityCase, loss: TrainStepLoss) => Promise<TrainStepSetup>;

const builders = new Map<string, TrainStepBuilder>();

/** Register how `config.model` = `name` is built (each model package does this from its parity module). */
export function registerTrainStepModel(name: string, build: TrainStepBuilder): void {
  builders.set(name, build);
}

/** The model names a `train_step` case can use here (those registered so far). */
export function trainStepModels(): string[] {
  return [...builders.keys()].sort();
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ConfigError("expected an object", field);
  return v as Record<string, unknown>;
}

function num(o: Record<string, unknown>, k: string, where: string, dflt?: number): number {
  const v = o[k] ?? dflt;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ConfigError(`expected a number, got ${JSON.stringify(v)}`, `${where}.${k}`);
  return v;
}

function flag(o: Record<string, unknown>, k: string, where: string): boolean {
  const v = o[k] ?? false;
  if (typeof v !== "boolean") throw new ConfigError(`expected a boolean, got ${JSON.stringify(v)}`, `${where}.${k}`);
  return v;
}

/** Run a `train_step` case. */
export async function runTrainStep(c: ParityCase): Promise<KindResult> {
  const cfg = c.config;
  const name = cfg.model;
  if (typeof name !== "string") throw new ConfigError("expected a model name", "model");
  const build = builders.get(name);
  if (!build) {
    throw new ConfigError(
      `unsupported model ${JSON.stringify(name)} (supported: ${trainStepModels().join(", ")})`,
      "model",
    );
  }
  const lossCfg = obj(cfg.loss, "loss");
  if (lossCfg.name !== "cross_entropy")
    throw new ConfigError(`only "cross_entropy" is supported, got ${JSON.stringify(lossCfg.name)}`, "loss.name");
  if ((lossCfg.reduction ?? "mean") !== "mean") throw new ConfigError(`only "mean" is supported`, "loss.reduction");
  const loss: TrainStepLoss = {
    ignoreIndex: num(lossCfg, "ignore_index", "loss", -100),
    labelSmoothing: num(lossCfg, "label_smoothing", "loss", 0),
    shiftLabels: flag(lossCfg, "shift_labels", "loss"),
  };
  if (loss.labelSmoothing < 0 || loss.labelSmoothing > 1)
    throw new ConfigError("must be in [0, 1]", "loss.label_smoothing");
  const steps = cfg.steps;
  if (typeof steps !== "number" || !Number.isInteger(steps) || steps < 1 || steps > 1000) {
    throw new ConfigError(`expected an integer in [1, 1000], got ${JSON.stringify(steps)}`, "steps");
  }
  const o = obj(cfg.optimizer, "optimizer");
  const clip =
    cfg.clip_grad_norm === null || cfg.clip_grad_norm === undefined
      ? undefined
      : obj(cfg.clip_grad_norm, "clip_grad_norm");
  if (clip && num(clip, "norm_type", "clip_grad_norm", 2) !== 2)
    throw new ConfigError("only 2 is supported", "clip_grad_norm.norm_type");

  const setup = await build(c, loss);
  try {
    const { model, batch } = setup;
    const rt = model.runtime;
    const params = model.parameters();
    if (Array.isArray(cfg.param_order)) {
      const have = new Set(params.map((p) => p.name));
      const missing = (cfg.param_order as unknown[]).filter((n) => !have.has(String(n)));
      if (missing.length)
        throw new ConfigError(`the model has no parameter ${JSON.stringify(missing[0])}`, "param_order");
    }
    const maximize = flag(o, "maximize", "optimizer");
    let opt: SGD | AdamW;
    if (o.name === "SGD") {
      opt = new SGD(rt, params, {
        lr: num(o, "lr", "optimizer"),
        momentum: num(o, "momentum", "optimizer", 0),
        dampening: num(o, "dampening", "optimizer", 0),
        weightDecay: num(o, "weight_decay", "optimizer", 0),
        nesterov: flag(o, "nesterov", "optimizer"),
        maximize,
      });
    } else if (o.name === "AdamW") {
      const betas = o.betas;
      if (!Array.isArray(betas) || betas.length !== 2)
        throw new ConfigError("expected [beta1, beta2]", "optimizer.betas");
      opt = new AdamW(rt, params, {
        lr: num(o, "lr", "optimizer"),
        betas: [Number(betas[0]), Number(betas[1])],
        eps: num(o, "eps", "optimizer", 1e-8),
        weightDecay: num(o, "weight_decay", "optimizer", 0.01),
        amsgrad: flag(o, "amsgrad", "optimizer"),
        maximize,
      });
    } else {
      throw new ConfigError(`only "SGD" and "AdamW" are supported, got ${JSON.stringify(o.name)}`, "optimizer.name");
    }

    const losses = new Float32Array(steps);
    const norms = new Float32Array(steps);
    const out: Record<string, Tensor> = {};
    for (let k = 0; k < steps; k++) {
      opt.zeroGrad();
      const r = model.lossAndGrad(batch, 1);
      if (!Number.isFinite(r.loss)) throw new InputError(`train_step: the loss of step ${k + 1} is ${r.loss}`);
      losses[k] = r.loss;
      if (k === 0) {
        for (const p of params)
          out[`grad.${p.name}`] = new Tensor(rt.heap.f32(p.grad, p.size).slice(), shapeOf(setup, p.name, p.size));
      }
      if (clip) norms[k] = clipGradNorm(rt, params, num(clip, "max_norm", "clip_grad_norm"));
      opt.step();
    }
    for (const p of params)
      out[`param.${p.name}`] = new Tensor(rt.heap.f32(p.ptr, p.size).slice(), shapeOf(setup, p.name, p.size));
    out.losses = new Tensor(losses, [steps]);
    if (clip) out.grad_norms = new Tensor(norms, [steps]);
    return { tensors: out };
  } finally {
    setup.dispose?.();
  }
}

function shapeOf(setup: TrainStepSetup, name: string, size: number): number[] {
  const s = setup.shapes[name];
  if (!s || s.reduce((a, d) => a * d, 1) !== size) {
    throw new InputError(`train_step: no shape of ${size} elements for parameter "${name}"`);
  }
  return [...s];
}
