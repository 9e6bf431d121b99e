/**
 * Optimizers with PyTorch semantics (`torch.optim.SGD`, `Adam`, `AdamW`), gradient clipping
 * (`torch.nn.utils.clip_grad_norm_`) and choosing what trains (freezing by name, no weight decay on
 * chosen tensors).
 * https://pytorch.org/docs/stable/optim.html
 *
 * A trainable tensor lives in a runtime heap: `ptr` holds its `size` f32 values and `grad` its
 * gradient. Optimizer state (momentum buffers, Adam moments) lives in the same heap, allocated when
 * the optimizer is made (so make it after the model's `train()`; the memory stays with the runtime),
 * and each step is one kernel call per tensor (core's `adamStep` / `sgdStep`: wasm SIMD, or the
 * reference twin). Updates are evaluated in float32, one rounding per operation in PyTorch's order,
 * so results match `torch.optim` within float32 rounding.
 *
 * @example
 * ```ts
 * const opt = new AdamW(rt, selectParams(model.parameters(), { freeze: ["vit."], noDecay: [/bias$/, /norm/] }), { lr: 1e-3 });
 * for (...) { model.zeroGrad(); lossBackward(); clipGradNorm(rt, opt.params(), 1.0); opt.step(); }
 * ```
 */
import { DisposedError, InputError, type Runtime, runtimeReleases } from "@wasmformer/core";

/** A trainable f32 tensor in `rt.heap`: values at `ptr`, gradient at `grad`, `size` elements each. */
export interface TrainParam {
  readonly name: string;
  readonly ptr: number;
  readonly grad: number;
  readonly size: number;
}

/** Tensors that share settings (PyTorch's param groups). Unset fields take the optimizer's. */
export interface ParamGroup {
  params: readonly TrainParam[];
  lr?: number;
  weightDecay?: number;
}

/** A name pattern: a prefix (`"vit."`), an exact name, or a regular expression. */
export type NamePattern = string | RegExp;

function matches(name: string, p: NamePattern): boolean {
  return typeof p === "string" ? name === p || name.startsWith(p) : p.test(name);
}

/**
 * Split `params` into the groups an optimizer takes: tensors matching `freeze` are left out (they
 * keep their values; the MiniGPT-4 recipe freezes `vit.` and the LLM), and tensors matching
 * `noDecay` go to a group with `weightDecay: 0`. `train`, when given, keeps only tensors matching
 * it. A pattern that matches no tensor is an `InputError` (a typo would silently train everything).
 */
export function selectParams(
  params: readonly TrainParam[],
  opts: { train?: NamePattern[]; freeze?: NamePattern[]; noDecay?: NamePattern[] } = {},
): ParamGroup[] {
  for (const [what, pats] of [
    ["train", opts.train],
    ["freeze", opts.freeze],
    ["noDecay", opts.noDecay],
  ] as const) {
    for (const p of pats ?? []) {
      if (!params.some((t) => matches(t.name, p))) {
        throw new InputError(`selectParams: ${what} pattern ${String(p)} matches no parameter`);
      }
    }
  }
  const kept = params.filter(
    (t) =>
      (!opts.train || opts.train.some((p) => matches(t.name, p))) &&
      !(opts.freeze ?? []).some((p) => matches(t.name, p)),
  );
  if (kept.length === 0) throw new InputError("selectParams: every parameter is frozen; nothing would train");
  const noDecay = kept.filter((t) => (opts.noDecay ?? []).some((p) => matches(t.name, p)));
  const decay = kept.filter((t) => !noDecay.includes(t));
  const groups: ParamGroup[] = [];
  if (decay.length) groups.push({ params: decay });
  if (noDecay.length) groups.push({ params: noDecay, weightDecay: 0 });
  return groups;
}

function checkNumber(where: string, name: string, v: number, min: number, max = Number.POSITIVE_INFINITY): void {
  if (typeof v !== "number" || !(v >= min && v <= max)) {
    throw new InputError(`${where}: ${name} must be a number in [${min}, ${max}], got ${String(v)}`);
  }
}

function normalizeGroups(where: string, params: readonly TrainParam[] | readonly ParamGroup[]): ParamGroup[] {
  const groups: ParamGroup[] =
    params.length > 0 && "params" in (params[0] as object)
      ? (params as ParamGroup[]).map((g) => ({ ...g }))
      : [{ params: params as TrainParam[] }];
  const seen = new Set<string>();
  for (const g of groups) {
    for (const p of g.params) {
      if (seen.has(p.name)) throw new InputError(`${where}: parameter "${p.name}" appears twice`);
      seen.add(p.name);
      if (!Number.isInteger(p.size) || p.size < 0) {
        throw new InputError(`${where}: parameter "${p.name}" has an invalid size ${p.size}`);
      }
    }
  }
  if (seen.size === 0) throw new InputError(`${where}: no parameters to optimize`);
  return groups;
}

/** Saved optimizer state (`stateDict()` / `loadStateDict()`), to resume training. */
export interface OptimizerState {
  kind: string;
  step: number;
  /** Per tensor name: its buffers (`momentum`, or `m`, `v`, `vmax`). */
  buffers: Record<string, Record<string, Float32Array>>;
}

abstract class Optimizer {
  protected readonly groups: ParamGroup[];
  /** Completed `step()` calls. */
  steps = 0;
  /** Per tensor name: its buffers in the heap (pointers to `size` floats each). */
  private readonly bufs = new Map<string, Record<string, number>>();
  /** Tensors that have been updated at least once (PyTorch's non-empty `state[p]`). */
  protected readonly started = new Set<string>();
  private keys: readonly string[] = [];
  /** `runtimeReleases(rt)` when made: a model disposed since then has given its memory away. */
  private readonly releases: number;

  constructor(
    protected readonly rt: Runtime,
    params: readonly TrainParam[] | readonly ParamGroup[],
    /** Learning rate of groups that set none (change it between steps for a schedule). */
    public lr: number,
    protected readonly weightDecay: number,
    private readonly kind: string,
  ) {
    this.groups = normalizeGroups(kind, params);
    this.releases = runtimeReleases(rt);
    checkNumber(kind, "lr", lr, 0);
    checkNumber(kind, "weight_decay", weightDecay, 0);
    for (const g of this.groups) {
      if (g.lr !== undefined) checkNumber(kind, "group lr", g.lr, 0);
      if (g.weightDecay !== undefined) checkNumber(kind, "group weight_decay", g.weightDecay, 0);
    }
  }

  /**
   * Allocate the per-tensor buffers (`keys`, zero-filled) in the runtime heap, next to the
   * parameters, once, when the optimizer is made: the update kernels read them from there.
   */
  protected allocate(keys: readonly string[]): void {
    this.keys = keys;
    if (keys.length === 0) return;
    for (const p of this.params()) {
      this.bufs.set(p.name, Object.fromEntries(keys.map((k) => [k, this.rt.heap.allocF32(p.size)])));
    }
  }

  /** Every tensor this optimizer updates. */
  params(): TrainParam[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** DisposedError once the parameters' runtime was released (their model disposed): the pointers may now be another model's memory. */
  private alive(): void {
    if (runtimeReleases(this.rt) !== this.releases)
      throw new DisposedError(`the model whose parameters this ${this.kind} updates`);
  }

  /** Set every gradient to 0 (`optimizer.zero_grad(set_to_none=False)`). */
  zeroGrad(): void {
    this.alive();
    for (const p of this.params()) this.rt.k.fill(p.grad, p.size, 0);
  }

  /** One update of every tensor from its current gradient (one wasm kernel call per tensor). */
  step(): void {
    this.alive();
    this.steps++;
    for (const g of this.groups) {
      const lr = g.lr ?? this.lr;
      const wd = g.weightDecay ?? this.weightDecay;
      for (const p of g.params) {
        this.update(p, this.bufs.get(p.name) ?? {}, lr, wd);
        this.started.add(p.name);
      }
    }
  }

  protected abstract update(p: TrainParam, bufs: Record<string, number>, lr: number, wd: number): void;

  /** The optimizer's state (copies), to save and later `loadStateDict`. */
  stateDict(): OptimizerState {
    this.alive();
    const buffers: OptimizerState["buffers"] = {};
    for (const p of this.params()) {
      const b = this.bufs.get(p.name);
      if (!b || !this.started.has(p.name)) continue;
      buffers[p.name] = Object.fromEntries(this.keys.map((k) => [k, this.rt.heap.f32(b[k]!, p.size).slice()]));
    }
    return { kind: this.kind, step: this.steps, buffers };
  }

  /** Resume from a saved state: the kind, tensor names, buffer names and sizes must match. */
  loadStateDict(st: OptimizerState): void {
    this.alive();
    if (st.kind !== this.kind) throw new InputError(`loadStateDict: state of ${st.kind}, not ${this.kind}`);
    const sizes = new Map(this.params().map((p) => [p.name, p.size]));
    for (const [name, bufs] of Object.entries(st.buffers)) {
      const size = sizes.get(name);
      if (size === undefined) throw new InputError(`loadStateDict: no parameter "${name}" in this optimizer`);
      for (const [k, v] of Object.entries(bufs)) {
        if (!(v instanceof Float32Array) || v.length !== size) {
          throw new InputError(`loadStateDict: buffer ${k} of "${name}" must be a Float32Array of ${size} values`);
        }
      }
      const got = Object.keys(bufs).sort().join(", ");
      if (got !== [...this.keys].sort().join(", ")) {
        throw new InputError(
          `loadStateDict: "${name}" has buffers [${got}], this ${this.kind} keeps [${[...this.keys].sort().join(", ")}]`,
        );
      }
    }
    if (!Number.isInteger(st.step) || st.step < 0) throw new InputError(`loadStateDict: invalid step ${st.step}`);
    this.started.clear();
    for (const p of this.params()) {
      const saved = st.buffers[p.name];
      const b = this.bufs.get(p.name);
      if (saved) this.started.add(p.name);
      if (b) for (const k of this.keys) this.rt.heap.f32(b[k]!, p.size).set(saved?.[k] ?? new Float32Array(p.size));
    }
    this.steps = st.step;
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  maximize?: boolean;
}

/**
 * `torch.optim.SGD`: `d = g + wd·θ`; with momentum `b = d` at the first step, then
 * `b = momentum·b + (1 − dampening)·d`; `d = d + momentum·b` (nesterov) or `d = b`; `θ −= lr·d`.
 */
export class SGD extends Optimizer {
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly maximize: boolean;

  constructor(rt: Runtime, params: readonly TrainParam[] | readonly ParamGroup[], opts: SGDOptions) {
    super(rt, params, opts.lr, opts.weightDecay ?? 0, "SGD");
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.nesterov = opts.nesterov ?? false;
    this.maximize = opts.maximize ?? false;
    checkNumber("SGD", "momentum", this.momentum, 0);
    checkNumber("SGD", "dampening", this.dampening, 0, 1);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new InputError("SGD: nesterov momentum requires a momentum > 0 and zero dampening");
    }
    this.allocate(this.momentum !== 0 ? ["momentum"] : []);
  }

  protected update(p: TrainParam, bufs: Record<string, number>, lr: number, wd: number): void {
    this.rt.k.sgdStep(
      p.ptr,
      p.grad,
      bufs.momentum ?? 0,
      p.size,
      lr,
      wd,
      this.momentum,
      1 - this.dampening,
      this.started.has(p.name) ? 0 : 1,
      this.nesterov ? 1 : 0,
      this.maximize ? -1 : 1,
    );
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
  maximize?: boolean;
}

/**
 * `torch.optim.Adam` (L2 weight decay added to the gradient) and, with `decoupled`, `AdamW`
 * (`θ ← θ·(1 − lr·wd)` first). `m ← β1·m + (1 − β1)·g`, `v ← β2·v + (1 − β2)·g²`,
 * `θ ← θ − lr/(1 − β1ᵗ) · m / (sqrt(v)/sqrt(1 − β2ᵗ) + eps)`; amsgrad uses the running max of `v`.
 */
export class Adam extends Optimizer {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly amsgrad: boolean;
  private readonly maximize: boolean;

  constructor(
    rt: Runtime,
    params: readonly TrainParam[] | readonly ParamGroup[],
    opts: AdamOptions = {},
    private readonly decoupled = false,
  ) {
    const name = decoupled ? "AdamW" : "Adam";
    super(rt, params, opts.lr ?? 1e-3, opts.weightDecay ?? (decoupled ? 1e-2 : 0), name);
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.amsgrad = opts.amsgrad ?? false;
    this.maximize = opts.maximize ?? false;
    checkNumber(name, "betas[0]", this.beta1, 0, 1 - Number.EPSILON);
    checkNumber(name, "betas[1]", this.beta2, 0, 1 - Number.EPSILON);
    checkNumber(name, "eps", this.eps, 0);
    this.allocate(this.amsgrad ? ["m", "v", "vmax"] : ["m", "v"]);
  }

  protected update(p: TrainParam, bufs: Record<string, number>, lr: number, wd: number): void {
    const { beta1: b1, beta2: b2 } = this;
    const t = this.steps;
    this.rt.k.adamStep(
      p.ptr,
      p.grad,
      bufs.m!,
      bufs.v!,
      bufs.vmax ?? 0,
      p.size,
      b1,
      1 - b1,
      b2,
      1 - b2,
      this.eps,
      lr / (1 - b1 ** t),
      Math.sqrt(1 - b2 ** t),
      wd,
      1 - lr * wd,
      this.decoupled ? 1 : 0,
      this.maximize ? -1 : 1,
    );
  }
}

/** `torch.optim.AdamW`: Adam with decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  constructor(rt: Runtime, params: readonly TrainParam[] | readonly ParamGroup[], opts: AdamOptions = {}) {
    super(rt, params, opts, true);
  }
}

/**
 * `torch.nn.utils.clip_grad_norm_`: the norm of all gradients together (`normType` 2 by default,
 * `Infinity` for the largest magnitude); when it exceeds `maxNorm`, every gradient is scaled by
 * `maxNorm / (norm + 1e-6)`. Returns the norm before clipping. A non-finite norm is an `InputError`
 * when `errorIfNonfinite` (and leaves the gradients untouched); otherwise they are scaled as PyTorch does.
 */
export function clipGradNorm(
  rt: Runtime,
  params: readonly TrainParam[],
  maxNorm: number,
  opts: { normType?: number; errorIfNonfinite?: boolean } = {},
): number {
  const p = opts.normType ?? 2;
  checkNumber("clipGradNorm", "maxNorm", maxNorm, 0);
  if (typeof p !== "number" || !(p > 0)) throw new InputError(`clipGradNorm: normType must be > 0, got ${p}`);
  let acc = 0;
  for (const t of params) {
    const g = rt.heap.f32(t.grad, t.size);
    // per-tensor norms first, then the norm of those norms, as torch does
    let s = 0;
    if (p === Number.POSITIVE_INFINITY) for (let i = 0; i < g.length; i++) s = Math.max(s, Math.abs(g[i]));
    else if (p === 2) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
    else for (let i = 0; i < g.length; i++) s += Math.abs(g[i]) ** p;
    if (p === Number.POSITIVE_INFINITY) acc = Math.max(acc, s);
    else acc += s;
  }
  const total = Math.fround(p === Number.POSITIVE_INFINITY ? acc : acc ** (1 / p));
  if (!Number.isFinite(total) && opts.errorIfNonfinite) {
    throw new InputError(`clipGradNorm: the total gradient norm is ${total}`);
  }
  const coef = Math.fround(maxNorm / (total + 1e-6));
  if (coef < 1 || Number.isNaN(coef)) {
    for (const t of params) {
      const g = rt.heap.f32(t.grad, t.size);
      for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i] * coef);
    }
  }
  return total;
}
