/**
 * Two small classifiers built from nn's layers, trainable with `fit` (each is a `Trainable`) and
 * the models of the `train_step` kind (FORMAT.md §6.17):
 *
 *   MLPClassifier   logits = fc2(act(fc1(x)))                          fc1.*, fc2.*
 *   LSTMClassifier  logits = classifier(f), f = the last LSTM layer's final hidden state
 *                   (h_n[−1], or concat(h_n[−2], h_n[−1]) when bidirectional)
 *                   of lstm(embedding(ids))                            embedding.*, lstm.*, classifier.*
 *
 * The loss is mean cross-entropy over the batch (`ignoreIndex`, `labelSmoothing` as PyTorch).
 * `lossAndGrad` runs the layers' training forwards and backwards whatever the mode; `evaluate`
 * and `predict` run the inference path.
 */
import { InputError, mulberry32, type Runtime, ShapeError, Tensor, tensorSource } from "@wasmformer/core";
import { type ActivationName, activation, activationBackward, activationCode } from "./activations.js";
import { Embedding } from "./embedding.js";
import type { BatchResult, Trainable } from "./fit.js";
import { Linear } from "./linear.js";
import { crossEntropy } from "./losses.js";
import { Module } from "./module.js";
import { LSTM } from "./rnn.js";
import { loadModule, type WeightScope } from "./state-dict.js";
import { type ModuleLife, posInt } from "./util.js";

/** ConfigErrors (naming the option) unless the given options are positive integers. */
function checkDims(o: object, names: string[]): void {
  for (const n of names) posInt((o as Record<string, unknown>)[n], n);
}

/** One labelled example of an `MLPClassifier`: `x` has `inputSize` features. */
export interface VectorExample {
  x: ArrayLike<number>;
  label: number;
}

/** One labelled token sequence of an `LSTMClassifier` (every sequence of a batch has the same length). */
export interface SequenceExample {
  ids: ArrayLike<number>;
  label: number;
}

export interface ClassifierLossOptions {
  /** Label that counts for nothing (default −100). */
  ignoreIndex?: number;
  /** Default 0. */
  labelSmoothing?: number;
}

/** How a new model's tensors start (PyTorch's default initialisation of each layer). */
type Init = { shape: number[]; init: "uniform"; bound: number } | { shape: number[]; init: "normal" };

/** Tensors drawn from `seed`: U(−bound, bound) or N(0, 1), in the order given. */
function initTensors(spec: Record<string, Init>, seed: number): Map<string, Tensor> {
  const rand = mulberry32(seed);
  const out = new Map<string, Tensor>();
  for (const [name, s] of Object.entries(spec)) {
    const n = s.shape.reduce((a, d) => a * d, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (s.init === "uniform") a[i] = (2 * rand() - 1) * s.bound;
      else a[i] = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
    }
    out.set(name, new Tensor(a, s.shape, "f32"));
  }
  return out;
}

/** `nn.Linear`'s default: weight and bias U(−1/√in, 1/√in). */
function linearInit(spec: Record<string, Init>, prefix: string, inF: number, outF: number): void {
  const bound = 1 / Math.sqrt(inF);
  spec[`${prefix}.weight`] = { shape: [outF, inF], init: "uniform", bound };
  spec[`${prefix}.bias`] = { shape: [outF], init: "uniform", bound };
}

/** Options of the classifiers' `create`: the seed of the initial weights, and the runtime. */
export interface CreateOptions {
  /** default 0 */
  seed?: number;
  /** default: a runtime of the model's own (released by `dispose()`) */
  runtime?: Runtime;
}

/** Shared by both classifiers: the loss on logits, the training-mode bracket, accuracy. */
abstract class Classifier<E extends { label: number }> extends Module implements Trainable<E> {
  abstract readonly numClasses: number;
  protected lossOpts: ClassifierLossOptions = {};
  /**
   * `lossAndGrad` ran in eval mode, so an optimizer step may have changed the trainable weights
   * after it went back to eval: recurrent layers' packed inference copies are refreshed (`eval()`)
   * before the next inference forward.
   */
  private stale = false;

  override train(on = true): this {
    super.train(on);
    if (!on) this.stale = false;
    return this;
  }

  /** Inference mode with the current weights (see `stale`). */
  private fresh(): void {
    if (!this.training && this.stale) this.eval();
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /** Set the loss's `ignoreIndex` / `labelSmoothing`. */
  setLoss(opts: ClassifierLossOptions): this {
    this.lossOpts = { ...opts };
    return this;
  }

  /** Logits `[B, classes]` of a batch (the training forward when the module is in training mode). */
  protected abstract logitsOf(batch: readonly E[]): Tensor<"f32">;
  /** Backpropagate the logits' gradient through the latest training forward. */
  protected abstract backwardLogits(dlogits: Tensor<"f32">): void;

  private labels(batch: readonly E[]): Tensor<"i32"> {
    const a = new Int32Array(batch.length);
    for (const [i, e] of batch.entries()) {
      if (!Number.isInteger(e.label)) throw new InputError(`example ${i}: label ${String(e.label)} is not an integer`);
      a[i] = e.label;
    }
    return new Tensor(a, [batch.length], "i32");
  }

  private result(logits: Tensor<"f32">, labels: Tensor<"i32">, loss: number): BatchResult {
    const C = this.numClasses;
    const ignore = this.lossOpts.ignoreIndex ?? -100;
    let count = 0;
    let correct = 0;
    const l = logits.data;
    for (let b = 0; b < labels.size; b++) {
      const y = labels.data[b]!;
      if (y === ignore) continue;
      count++;
      let best = 0;
      for (let c = 1; c < C; c++) if (l[b * C + c]! > l[b * C + best]!) best = c;
      if (best === y) correct++;
    }
    return { loss, count, correct };
  }

  lossAndGrad(batch: readonly E[], scale: number): BatchResult {
    if (batch.length === 0) throw new InputError(`${this.constructor.name}.lossAndGrad: empty batch`);
    const was = this.training;
    if (!was) this.train();
    try {
      const labels = this.labels(batch);
      const logits = this.logitsOf(batch);
      const { loss, grad } = crossEntropy(logits, labels, { ...this.lossOpts, scale, runtime: this.rt });
      this.backwardLogits(grad);
      return this.result(logits, labels, loss);
    } catch (e) {
      if (was) this.train(); // drop the records of the failed pass
      throw e;
    } finally {
      if (!was) {
        this.eval();
        this.stale = true; // an optimizer step follows
      }
    }
  }

  evaluate(batch: readonly E[]): BatchResult {
    const was = this.training;
    if (was) this.eval();
    this.fresh();
    try {
      const labels = this.labels(batch);
      const logits = this.logitsOf(batch);
      const { loss } = crossEntropy(logits, labels, { ...this.lossOpts, runtime: this.rt });
      return this.result(logits, labels, loss);
    } finally {
      if (was) this.train();
    }
  }

  /** Class logits `[B, classes]` (inference path). */
  predict(batch: readonly Omit<E, "label">[]): Tensor<"f32"> {
    const was = this.training;
    if (was) this.eval();
    this.fresh();
    try {
      return this.logitsOf(batch.map((e) => ({ ...e, label: 0 }) as unknown as E));
    } finally {
      if (was) this.train();
    }
  }

  /** Free the module tree's wasm memory (see `Linear.dispose`). */
  dispose(): void {
    this.life.dispose();
  }
}

export interface MLPClassifierOptions {
  inputSize: number;
  hiddenSize: number;
  numClasses: number;
  /** default "relu" */
  activation?: ActivationName;
}

/** `fc2(act(fc1(x)))`, weights `fc1.weight [hidden, input]`, `fc1.bias`, `fc2.weight [classes, hidden]`, `fc2.bias`. */
export class MLPClassifier extends Classifier<VectorExample> {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly numClasses: number;
  readonly activation: ActivationName;
  /** pre-activations of the training forwards, for the backward */
  private readonly pre: Tensor<"f32">[] = [];

  constructor(scope: WeightScope, opts: MLPClassifierOptions) {
    checkDims(opts, ["inputSize", "hiddenSize", "numClasses"]);
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.activation = opts.activation ?? "relu";
    activationCode(this.activation);
    this.numClasses = opts.numClasses;
    this.fc1 = new Linear(scope.pp("fc1"), opts.inputSize, opts.hiddenSize);
    this.fc2 = new Linear(scope.pp("fc2"), opts.hiddenSize, opts.numClasses);
  }

  /** A new model with PyTorch's default initialisation (`nn.Linear`), drawn from `seed`. */
  static create(opts: MLPClassifierOptions, o: CreateOptions = {}): MLPClassifier {
    checkDims(opts, ["inputSize", "hiddenSize", "numClasses"]);
    const spec: Record<string, Init> = {};
    linearInit(spec, "fc1", opts.inputSize, opts.hiddenSize);
    linearInit(spec, "fc2", opts.hiddenSize, opts.numClasses);
    return loadModule(tensorSource(initTensors(spec, o.seed ?? 0)), (s) => new MLPClassifier(s, opts), {
      runtime: o.runtime,
    });
  }

  protected override children(): Module[] {
    return [this.fc1, this.fc2];
  }

  protected override onMode(): void {
    this.pre.length = 0;
  }

  protected logitsOf(batch: readonly VectorExample[]): Tensor<"f32"> {
    const I = this.fc1.inFeatures;
    const x = new Float32Array(batch.length * I);
    for (const [b, e] of batch.entries()) {
      if (e.x.length !== I) throw new ShapeError(`example ${b}: x has ${e.x.length} features, expected ${I}`);
      x.set(e.x, b * I);
    }
    const h = this.fc1.forward(new Tensor(x, [batch.length, I], "f32"));
    if (this.training) this.pre.push(h);
    return this.fc2.forward(activation(h, this.activation, this.rt));
  }

  protected backwardLogits(dlogits: Tensor<"f32">): void {
    const h = this.popRecord(this.pre, "MLPClassifier");
    this.fc1.backward(activationBackward(this.fc2.backward(dlogits), h, this.activation, this.rt));
  }
}

export interface LSTMClassifierOptions {
  vocabSize: number;
  embeddingDim: number;
  hiddenSize: number;
  numClasses: number;
  /** default 1 */
  numLayers?: number;
  /** default false */
  bidirectional?: boolean;
}

/**
 * `classifier(f)`, f the final hidden state of the last LSTM layer over `embedding(ids)` (both
 * directions' when bidirectional). Weights `embedding.weight`, `lstm.*` (PyTorch LSTM names),
 * `classifier.weight [classes, D·hidden]`, `classifier.bias`.
 */
export class LSTMClassifier extends Classifier<SequenceExample> {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  readonly embedding: Embedding;
  readonly lstm: LSTM;
  readonly classifier: Linear;
  readonly numClasses: number;

  constructor(scope: WeightScope, opts: LSTMClassifierOptions) {
    checkDims({ numLayers: 1, ...opts }, ["vocabSize", "embeddingDim", "hiddenSize", "numLayers", "numClasses"]);
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.numClasses = opts.numClasses;
    const D = opts.bidirectional ? 2 : 1;
    this.embedding = new Embedding(scope.pp("embedding"), opts.vocabSize, opts.embeddingDim);
    this.lstm = new LSTM(scope.pp("lstm"), {
      inputSize: opts.embeddingDim,
      hiddenSize: opts.hiddenSize,
      numLayers: opts.numLayers ?? 1,
      bidirectional: opts.bidirectional ?? false,
    });
    this.classifier = new Linear(scope.pp("classifier"), D * opts.hiddenSize, opts.numClasses);
  }

  /**
   * A new model with PyTorch's default initialisation, drawn from `seed`: embedding N(0, 1), every
   * LSTM tensor U(−1/√hidden, 1/√hidden), the classifier as `nn.Linear`.
   */
  static create(opts: LSTMClassifierOptions, o: CreateOptions = {}): LSTMClassifier {
    checkDims({ numLayers: 1, ...opts }, ["vocabSize", "embeddingDim", "hiddenSize", "numLayers", "numClasses"]);
    const { hiddenSize: H, embeddingDim: E } = opts;
    const D = opts.bidirectional ? 2 : 1;
    const spec: Record<string, Init> = { "embedding.weight": { shape: [opts.vocabSize, E], init: "normal" } };
    const bound = 1 / Math.sqrt(H);
    for (let l = 0; l < (opts.numLayers ?? 1); l++) {
      for (let d = 0; d < D; d++) {
        const sfx = `l${l}${d ? "_reverse" : ""}`;
        spec[`lstm.weight_ih_${sfx}`] = { shape: [4 * H, l === 0 ? E : D * H], init: "uniform", bound };
        spec[`lstm.weight_hh_${sfx}`] = { shape: [4 * H, H], init: "uniform", bound };
        spec[`lstm.bias_ih_${sfx}`] = { shape: [4 * H], init: "uniform", bound };
        spec[`lstm.bias_hh_${sfx}`] = { shape: [4 * H], init: "uniform", bound };
      }
    }
    linearInit(spec, "classifier", D * H, opts.numClasses);
    return loadModule(tensorSource(initTensors(spec, o.seed ?? 0)), (s) => new LSTMClassifier(s, opts), {
      runtime: o.runtime,
    });
  }

  protected override children(): Module[] {
    return [this.embedding, this.lstm, this.classifier];
  }

  protected logitsOf(batch: readonly SequenceExample[]): Tensor<"f32"> {
    const B = batch.length;
    const T = batch[0]?.ids.length ?? 0;
    if (T < 1) throw new ShapeError("example 0: the token sequence is empty");
    const ids = new Int32Array(B * T);
    for (const [b, e] of batch.entries()) {
      if (e.ids.length !== T)
        throw new ShapeError(`example ${b}: ${e.ids.length} tokens, but example 0 has ${T} (pad the sequences)`);
      for (let t = 0; t < T; t++) ids[b * T + t] = e.ids[t]!;
    }
    const x = this.embedding.forward(new Tensor(ids, [B, T], "i32"));
    const { h } = this.lstm.forward(x);
    const { D, hiddenSize: H, numLayers: L } = this.lstm;
    // f[b] = concat over the last layer's directions of h[(L−1)·D + d][b]
    const f = new Float32Array(B * D * H);
    for (let d = 0; d < D; d++)
      for (let b = 0; b < B; b++)
        f.set(h.data.subarray((((L - 1) * D + d) * B + b) * H, (((L - 1) * D + d) * B + b + 1) * H), (b * D + d) * H);
    return this.classifier.forward(new Tensor(f, [B, D * H], "f32"));
  }

  protected backwardLogits(dlogits: Tensor<"f32">): void {
    const df = this.classifier.backward(dlogits).data;
    const { D, hiddenSize: H, numLayers: L } = this.lstm;
    const B = dlogits.shape[0]!;
    const dh = new Float32Array(L * D * B * H);
    for (let d = 0; d < D; d++)
      for (let b = 0; b < B; b++)
        dh.set(df.subarray((b * D + d) * H, (b * D + d + 1) * H), (((L - 1) * D + d) * B + b) * H);
    const { dx } = this.lstm.backward(undefined, new Tensor(dh, [L * D, B, H], "f32"));
    this.embedding.backward(dx);
  }
}
