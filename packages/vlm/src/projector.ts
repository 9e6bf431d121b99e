/**
 * Projections from vision features into a language model's embedding space, as chains of
 * `torch.nn.Linear` layers (`y = x·Wᵀ + b`, W `[out, in]`, one GEMM with transB = 1 each):
 *
 * - `LinearProjector`: BLIP-2 / MiniGPT-4 `language_projection` (Q-Former output → LM width);
 * - `LlavaProjector`: LLaVA's `multi_modal_projector` (HF `LlavaMultiModalProjector`):
 *   `linear_2(act(linear_1(x)))`, act = `projector_hidden_act` (`"gelu"`), applied to the vision
 *   tower's features directly (with CLS dropped for `vision_feature_select_strategy: "default"`).
 *
 * Weights live in the projector's own runtime heap; scratch is planned per row count and reused.
 *
 * Training (`train()`, the MiniGPT-4 recipe trains `llama_proj` only): the forward also keeps each
 * layer's input and pre-activation (one record, the latest forward), and `backward(dy)` adds
 * `dW += dzᵀ·x`, `db += Σ dz` (dz = dy ⊙ act′(z)) into the gradients and returns `dx = dz·W`.
 * `parameters()` names the tensors as in the checkpoint (`llama_proj.weight`, …).
 */
import {
  Act,
  checkTensors,
  createRuntime,
  DisposedError,
  type ExpectedTensor,
  InputError,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
} from "@wasmformer/core";
import type { TrainParam } from "@wasmformer/nn";
import type { ImageAdapter, ImageProjection } from "./adapter.js";
import { qformerActCode } from "./config.js";
import { putTensor, type WeightSource } from "./weights.js";

const F32 = 4;

interface LinearPtrs {
  inF: number;
  outF: number;
  w: number; // (out, in)
  b: number; // (out,) or 0
  act: number; // applied after this layer
  name: string; // checkpoint prefix of `.weight` / `.bias`
}

/** The latest training forward of a chain: its row count (the activations are the plan's buffers). */
interface ChainRecord {
  n: number;
}

/** A chain of Linear layers on one runtime (the shared engine of both projectors). */
class LinearChain {
  /** start and end of this chain's latest scratch (a shared runtime may hold other allocations around it) */
  private planStart: number;
  private top: number;
  private rows = 0;
  private bufs: number[] = []; // input, then each layer's output: (rows, width)
  private pre: number[] = []; // training: each layer's pre-activation (rows, out) (= its output without act)
  private dbufs: number[] = []; // training: gradients of the input and each output (rows, width)
  private grads: { w: number; b: number }[] | undefined;
  private record: ChainRecord | undefined;
  private isDisposed = false;
  /** Training mode (see the module comment). */
  training = false;

  constructor(
    readonly runtime: Runtime,
    private readonly layers: LinearPtrs[],
    /** the runtime was created for this chain: `dispose` gives it back */
    private readonly ownsRuntime: boolean,
    /** name in DisposedError messages */
    private readonly what: string,
  ) {
    this.planStart = runtime.heap.mark();
    this.top = this.planStart;
  }

  get inputDim(): number {
    return this.layers[0]!.inF;
  }
  get outputDim(): number {
    return this.layers[this.layers.length - 1]!.outF;
  }

  private planFor(n: number): void {
    const train = this.training;
    if (this.rows === n && (!train || this.dbufs.length > 0)) return;
    const heap = this.runtime.heap;
    // free the previous scratch (only it), unless someone allocated above it since (a shared runtime)
    if (heap.mark() === this.top) heap.release(this.planStart);
    this.planStart = heap.mark();
    const widths = [this.inputDim, ...this.layers.map((l) => l.outF)];
    const per = widths.reduce((a, d) => a + n * d * F32 + 16, 0);
    heap.reserve(train ? 3 * per : per);
    const f = (d: number) => heap.allocF32(Math.max(1, n * d));
    this.bufs = widths.map(f);
    this.pre = train ? this.layers.map((l) => (l.act === Act.none ? 0 : f(l.outF))) : [];
    this.dbufs = train ? widths.map(f) : [];
    this.record = undefined;
    this.rows = n;
    this.top = heap.mark();
  }

  /** Training mode on/off; the first `train()` allocates the gradients (zeroed). */
  train(on: boolean): void {
    this.alive();
    this.training = on;
    this.record = undefined;
    if (on) this.gradients();
  }

  /** The gradient buffers, allocated (zeroed) on first use below the scratch. */
  private gradients(): { w: number; b: number }[] {
    if (this.grads) return this.grads;
    const heap = this.runtime.heap;
    if (heap.mark() === this.top) heap.release(this.planStart);
    heap.reserve(this.layers.reduce((a, l) => a + (l.inF * l.outF + l.outF) * F32 + 32, 0));
    this.grads = this.layers.map((l) => ({ w: heap.allocF32(l.inF * l.outF), b: l.b ? heap.allocF32(l.outF) : 0 }));
    for (const [i, l] of this.layers.entries()) {
      heap.f32(this.grads[i]!.w, l.inF * l.outF).fill(0);
      if (l.b) heap.f32(this.grads[i]!.b, l.outF).fill(0);
    }
    this.planStart = heap.mark();
    this.top = this.planStart;
    this.rows = 0; // the old scratch (if released) is gone
    this.dbufs = [];
    return this.grads;
  }

  /** Every weight and bias as a `TrainParam` under its checkpoint name (after `train()`). */
  parameters(): TrainParam[] {
    this.alive();
    const grads = this.gradients();
    const out: TrainParam[] = [];
    for (const [i, l] of this.layers.entries()) {
      out.push({ name: `${l.name}.weight`, ptr: l.w, grad: grads[i]!.w, size: l.inF * l.outF });
      if (l.b) out.push({ name: `${l.name}.bias`, ptr: l.b, grad: grads[i]!.b, size: l.outF });
    }
    return out;
  }

  /**
   * Backward of the latest training forward: dy (n, out) → adds the parameter gradients and
   * returns dx (n, in) when `wantInput` (else an empty array: nothing upstream trains).
   */
  backward(dy: Float32Array, n: number, wantInput: boolean): Float32Array {
    this.alive();
    const r = this.record;
    if (!r)
      throw new InputError(`${this.what}.backward: no training forward to backpropagate (call train(), then forward)`);
    if (r.n !== n || dy.length !== n * this.outputDim)
      throw new ShapeError(
        `${this.what}.backward: gradient of ${dy.length} floats for the forward's ${r.n} rows of ${this.outputDim}`,
      );
    this.record = undefined;
    const { k, heap } = this.runtime;
    const L = this.layers.length;
    heap.f32(this.dbufs[L]!, n * this.outputDim).set(dy);
    for (let i = L - 1; i >= 0; i--) {
      const l = this.layers[i]!;
      const g = this.grads![i]!;
      const dz = this.dbufs[i + 1]!;
      if (l.act !== Act.none) {
        // dz = dy ⊙ act′(z) (z kept in `pre`); this layer's output buffer (read by the next layer's
        // backward, already done) holds dy meanwhile
        const y = this.bufs[i + 1]!;
        heap.f32(y, n * l.outF).set(heap.f32(dz, n * l.outF));
        heap.f32(dz, n * l.outF).fill(0);
        k.unaryBackward(dz, y, this.pre[i]!, n * l.outF, l.act);
      }
      k.gemm(l.outF, l.inF, n, dz, l.outF, 1, this.bufs[i]!, l.inF, 0, g.w, l.inF, 0, 1, 1, Act.none); // dW += dzᵀ·x
      if (l.b) k.biasGrad(g.b, dz, n, l.outF, l.outF);
      if (i > 0 || wantInput)
        k.gemm(n, l.inF, l.outF, dz, l.outF, 0, l.w, l.inF, 0, this.dbufs[i]!, l.inF, 0, 1, 0, Act.none); // dx = dz·W
    }
    return wantInput ? heap.f32(this.dbufs[0]!, n * this.inputDim).slice() : new Float32Array(0);
  }

  private alive(): void {
    if (this.isDisposed) throw new DisposedError(`this ${this.what}`);
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    if (this.ownsRuntime) releaseRuntime(this.runtime);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** x (n, in) → (n, out) as a fresh Float32Array. */
  run(x: Float32Array, n: number): Float32Array {
    if (this.isDisposed) throw new DisposedError(`this ${this.what}`);
    if (n === 0) return new Float32Array(0);
    this.planFor(n);
    const { k, heap } = this.runtime;
    heap.f32(this.bufs[0]!, n * this.inputDim).set(x);
    this.layers.forEach((l, i) => {
      const z = this.training ? this.pre[i]! : 0;
      if (z) {
        // training keeps the pre-activation z for act′
        k.gemm(n, l.outF, l.inF, this.bufs[i]!, l.inF, 0, l.w, l.inF, 1, z, l.outF, l.b, 1, 0, Act.none);
        k.unary(z, this.bufs[i + 1]!, n * l.outF, l.act);
      } else {
        k.gemm(n, l.outF, l.inF, this.bufs[i]!, l.inF, 0, l.w, l.inF, 1, this.bufs[i + 1]!, l.outF, l.b, 1, 0, l.act);
      }
    });
    if (this.training) this.record = { n };
    return heap.f32(this.bufs[this.layers.length]!, n * this.outputDim).slice();
  }
}

/** Check `x` is an f32 `[B, N, inputDim]` tensor. */
function checkFeatures(x: Tensor, inDim: number, what: string): [number, number] {
  if (!(x instanceof Tensor)) throw new InputError(`${what}: input must be a Tensor [batch, tokens, ${inDim}]`);
  if (x.dtype !== "f32") throw new InputError(`${what}: input must be f32, got ${x.dtype}`);
  if (x.ndim !== 3 || x.shape[2] !== inDim)
    throw new ShapeError(`${what}: input must be [batch, tokens, ${inDim}], got [${x.shape.join(", ")}]`);
  return [x.shape[0]!, x.shape[1]!];
}

/** Names and shapes of a Linear layer `prefix.weight [out, in]`, `prefix.bias [out]`. */
function linearWants(prefix: string, inF: number, outF: number): ExpectedTensor[] {
  return [
    { name: `${prefix}.weight`, shape: [outF, inF] },
    { name: `${prefix}.bias`, shape: [outF] },
  ];
}

/** Shape of a tensor (lazy sources: without reading it). */
async function shapeOf(src: WeightSource, name: string): Promise<readonly number[] | undefined> {
  if (!src.has(name)) return undefined;
  if (typeof src.info === "function") return src.info(name).shape;
  return (await src.get(name)).shape;
}

export interface ProjectorOptions {
  /** Runtime to own (default: a fresh `createRuntime()`). */
  runtime?: Runtime;
  /** Other tensors under the projector's prefix are a `WeightsError` (default true); false ignores them. */
  strict?: boolean;
}

/**
 * BLIP-2 / MiniGPT-4 `language_projection`: `Linear(qformer hidden_size → LM n_embd)`.
 * @example
 * ```ts
 * const proj = await LinearProjector.fromWeights(src, { prefix: "language_projection", inputDim: 32, outputDim: 768 });
 * const embeds = proj.forward(qformerOutput);   // [B, Q, 32] → [B, Q, 768]
 * ```
 */
export class LinearProjector {
  private constructor(private readonly chain: LinearChain) {}

  /** The runtime holding the weights (and gradients). */
  get runtime(): Runtime {
    return this.chain.runtime;
  }

  get inputDim(): number {
    return this.chain.inputDim;
  }
  get outputDim(): number {
    return this.chain.outputDim;
  }

  /**
   * Load `prefix.weight` `[out, in]` and `prefix.bias` `[out]` (default prefix
   * `"language_projection"`). Sizes are read from the weight unless given (then they are checked).
   */
  static async fromWeights(
    src: WeightSource,
    opts: ProjectorOptions & { prefix?: string; inputDim?: number; outputDim?: number } = {},
  ): Promise<LinearProjector> {
    const p = opts.prefix ?? "language_projection";
    const shape = await shapeOf(src, `${p}.weight`);
    const outF = opts.outputDim ?? shape?.[0] ?? 0;
    const inF = opts.inputDim ?? shape?.[1] ?? 0;
    const { faults } = await checkTensors(src, linearWants(p, inF, outF), {
      owns: (n) => n.startsWith(`${p}.`),
      strict: opts.strict,
    });
    faults.throwIfAny(`projection "${p}" (${inF} → ${outF})`);
    const rt = opts.runtime ?? createRuntime();
    rt.heap.reserve((inF * outF + outF) * F32 + 64);
    const w = await putTensor(rt.heap, src, `${p}.weight`);
    const b = await putTensor(rt.heap, src, `${p}.bias`);
    return new LinearProjector(
      new LinearChain(rt, [{ inF, outF, w, b, act: Act.none, name: p }], opts.runtime === undefined, "LinearProjector"),
    );
  }

  /** Free the weights now (core's `releaseRuntime`, unless the runtime was passed in); later calls are `DisposedError`s. */
  dispose(): void {
    this.chain.dispose();
  }

  /** True once `dispose()` has run. */
  get disposed(): boolean {
    return this.chain.disposed;
  }

  /** `[B, N, inputDim]` → `[B, N, outputDim]` (in training mode the input is kept for `backward`). */
  forward(x: Tensor): Tensor<"f32"> {
    const [B, N] = checkFeatures(x, this.inputDim, "language_projection");
    return new Tensor(this.chain.run(x.data as Float32Array, B * N), [B, N, this.outputDim]);
  }

  /** Training mode (`train(false)` = `eval()`): forwards keep their input for `backward`. */
  train(on = true): this {
    this.chain.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  get training(): boolean {
    return this.chain.training;
  }

  /** `<prefix>.weight` `[out, in]` and `<prefix>.bias` as `TrainParam`s (values in place, gradients beside). */
  parameters(): TrainParam[] {
    return this.chain.parameters();
  }

  /**
   * Backward of the latest training forward: `dy` `[B, N, outputDim]` → adds `dW += dyᵀ·x`,
   * `db += Σ dy` and returns `dx = dy·W` `[B, N, inputDim]` (with `wantInput` false: an empty tensor).
   */
  backward(dy: Tensor, wantInput = true): Tensor<"f32"> {
    const [B, N] = checkFeatures(dy, this.outputDim, "language_projection.backward");
    const dx = this.chain.backward(dy.data as Float32Array, B * N, wantInput);
    return new Tensor(dx, wantInput ? [B, N, this.inputDim] : [0]);
  }
}

/** HF `LlavaConfig.vision_feature_select_strategy`: `"default"` drops the CLS token, `"full"` keeps it. */
export type FeatureSelectStrategy = "default" | "full";

export interface LlavaProjectorOptions extends ProjectorOptions {
  /** Prefix of `linear_1` / `linear_2` (default `"multi_modal_projector"`). */
  prefix?: string;
  /** `projector_hidden_act` (default `"gelu"`, exact). */
  projectorHiddenAct?: string;
  /** Default `"default"` (drop the CLS token, as LLaVA). */
  visionFeatureSelectStrategy?: FeatureSelectStrategy;
}

/**
 * LLaVA's two-layer MLP projector (HF `LlavaMultiModalProjector`): `linear_2(gelu(linear_1(x)))`,
 * `linear_1` `[text, vision]`, `linear_2` `[text, text]`. An `ImageAdapter`: it maps vision features
 * (CLS dropped by default) straight to LM embeddings, one per image token.
 */
export class LlavaProjector implements ImageAdapter {
  readonly visionFeatureSelectStrategy: FeatureSelectStrategy;
  private constructor(
    private readonly chain: LinearChain,
    strategy: FeatureSelectStrategy,
  ) {
    this.visionFeatureSelectStrategy = strategy;
  }

  /** The runtime holding the weights (and gradients). */
  get runtime(): Runtime {
    return this.chain.runtime;
  }

  get inputDim(): number {
    return this.chain.inputDim;
  }
  get outputDim(): number {
    return this.chain.outputDim;
  }

  /** Load `linear_1` and `linear_2` (sizes from the tensors); the activation from `projectorHiddenAct`. */
  static async fromWeights(src: WeightSource, opts: LlavaProjectorOptions = {}): Promise<LlavaProjector> {
    const p = opts.prefix ?? "multi_modal_projector";
    const strategy = opts.visionFeatureSelectStrategy ?? "default";
    if (strategy !== "default" && strategy !== "full")
      throw new InputError(`visionFeatureSelectStrategy must be "default" or "full", got ${JSON.stringify(strategy)}`);
    const act = qformerActCode(opts.projectorHiddenAct ?? "gelu", "projector_hidden_act");
    const s1 = await shapeOf(src, `${p}.linear_1.weight`);
    const text = s1?.[0] ?? 0;
    const vision = s1?.[1] ?? 0;
    const { faults } = await checkTensors(
      src,
      [...linearWants(`${p}.linear_1`, vision, text), ...linearWants(`${p}.linear_2`, text, text)],
      { owns: (n) => n.startsWith(`${p}.`), strict: opts.strict },
    );
    faults.throwIfAny(`LLaVA projector "${p}" (${vision} → ${text} → ${text})`);
    const rt = opts.runtime ?? createRuntime();
    rt.heap.reserve((vision * text + text * text + 2 * text) * F32 + 128);
    const w1 = await putTensor(rt.heap, src, `${p}.linear_1.weight`);
    const b1 = await putTensor(rt.heap, src, `${p}.linear_1.bias`);
    const w2 = await putTensor(rt.heap, src, `${p}.linear_2.weight`);
    const b2 = await putTensor(rt.heap, src, `${p}.linear_2.bias`);
    const chain = new LinearChain(
      rt,
      [
        { inF: vision, outF: text, w: w1, b: b1, act, name: `${p}.linear_1` },
        { inF: text, outF: text, w: w2, b: b2, act: Act.none, name: `${p}.linear_2` },
      ],
      opts.runtime === undefined,
      "LlavaProjector",
    );
    return new LlavaProjector(chain, strategy);
  }

  /** Free the weights now (core's `releaseRuntime`, unless the runtime was passed in); later calls are `DisposedError`s. */
  dispose(): void {
    this.chain.dispose();
  }

  /** True once `dispose()` has run. */
  get disposed(): boolean {
    return this.chain.disposed;
  }

  /** `[B, N, vision]` → `[B, N, text]` on every row given (no token selection). */
  forward(x: Tensor): Tensor<"f32"> {
    const [B, N] = checkFeatures(x, this.inputDim, "multi_modal_projector");
    return new Tensor(this.chain.run(x.data as Float32Array, B * N), [B, N, this.outputDim]);
  }

  /** Training mode (`train(false)` = `eval()`): forwards keep their input and `linear_1`'s pre-activation. */
  train(on = true): this {
    this.chain.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  get training(): boolean {
    return this.chain.training;
  }

  /** `<prefix>.linear_1.weight`, `.bias`, `<prefix>.linear_2.weight`, `.bias` as `TrainParam`s. */
  parameters(): TrainParam[] {
    return this.chain.parameters();
  }

  /**
   * Backward of the latest training `forward` (or `project`, over the rows it projected): `dy`
   * `[B, N, text]` → adds the gradients of both layers (through the activation) and returns `dx`
   * `[B, N, vision]` (with `wantInput` false: an empty tensor).
   */
  backward(dy: Tensor, wantInput = true): Tensor<"f32"> {
    const [B, N] = checkFeatures(dy, this.outputDim, "multi_modal_projector.backward");
    const dx = this.chain.backward(dy.data as Float32Array, B * N, wantInput);
    return new Tensor(dx, wantInput ? [B, N, this.inputDim] : [0]);
  }

  /** `ImageAdapter`: vision features `[B, T, vision]` → image embeddings (CLS dropped for `"default"`). */
  project(visionFeatures: Tensor): ImageProjection {
    const [B, T] = checkFeatures(visionFeatures, this.inputDim, "multi_modal_projector");
    if (this.visionFeatureSelectStrategy === "full") return { imageEmbeds: this.forward(visionFeatures) };
    if (T < 2) throw new InputError(`vision features have ${T} token(s): nothing is left after dropping CLS`);
    const D = this.inputDim;
    const src = visionFeatures.data as Float32Array;
    const patches = new Float32Array(B * (T - 1) * D);
    for (let b = 0; b < B; b++) patches.set(src.subarray((b * T + 1) * D, (b + 1) * T * D), b * (T - 1) * D);
    return { imageEmbeds: this.forward(new Tensor(patches, [B, T - 1, D])) };
  }
}
