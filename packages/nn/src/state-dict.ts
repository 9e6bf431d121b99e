/**
 * Loading weights by state-dict name (PyTorch names, never renamed), like candle's `VarBuilder`:
 * a module asks its `WeightScope` for `"weight"` with the shape it expects, sub-modules get a
 * sub-scope (`scope.pp("self_attn")`), and every tensor is copied once into the runtime heap.
 *
 * Nothing throws while a module tree is being built: missing tensors, tensors of the wrong shape
 * or dtype are recorded, and `StateDict.finish()` reports all of them at once, together with every
 * tensor under the loaded prefix that no module asked for (unless `strict: false`, as PyTorch's
 * `load_state_dict(strict=False)`), in one `WeightsError` that lists the full names. Only a module
 * tree asking for far more tensors than the checkpoint holds (`num_layers: 1e7`) stops early: after
 * `MAX_MISSING` missing tensors the error is thrown at once.
 *
 * @example
 * ```ts
 * const sd = new StateDict(parseSafetensors(bytes), rt, "model.");
 * const lstm = new LSTM(sd.root(), { inputSize: 128, hiddenSize: 256, numLayers: 2 });
 * sd.finish(); // throws WeightsError: missing "model.weight_hh_l1", unexpected "model.foo", …
 * ```
 */
import {
  createRefRuntime,
  type Runtime,
  releaseRuntime,
  type Tensor,
  type TensorSource,
  WeightFaults,
  WeightsError,
} from "@wasmformer/core";
import { ModuleLife, nnRuntime } from "./util.js";

export { type TensorSource, tensorSource } from "@wasmformer/core";

/** A weight tensor in the runtime heap: byte pointer and shape (f32, contiguous). */
export interface Param {
  readonly name: string;
  readonly ptr: number;
  readonly shape: readonly number[];
}

/**
 * Missing tensors after which building stops with the `WeightsError` at once: a config asking for
 * far more layers than the checkpoint holds would otherwise build (and list) every one of them.
 */
export const MAX_MISSING = 256;

/** Options of `StateDict`, `loadModule` and `loadModuleAsync`. */
export interface StateDictOptions {
  /** Names (full) that may be present without being used (extra buffers). */
  ignore?: (name: string) => boolean;
  /**
   * Tensors under the prefix that no module asks for are a `WeightsError` (default true, as
   * PyTorch's strict `load_state_dict`); false ignores them.
   */
  strict?: boolean;
}

export class StateDict {
  private readonly used = new Set<string>();
  private readonly faults = new WeightFaults();
  private readonly ignored: (name: string) => boolean;
  private readonly strict: boolean;
  private readonly record: Set<string> | undefined;
  /** Shared by every module built from this dict (`dispose()` of any of them disposes all). */
  readonly life: ModuleLife;

  /**
   * @param source the tensors (not copied until asked for)
   * @param rt the runtime whose heap receives the weights
   * @param prefix the module tree's prefix in `source` (`""`, or e.g. `"transformer."`)
   * @param opts.record a dry run: only collect the names the modules ask for (nothing is read;
   *   names absent from `source` still count towards `MAX_MISSING`)
   * @param opts.ownsRuntime the caller created `rt` for these modules: their `dispose()` releases it
   */
  constructor(
    readonly source: TensorSource,
    readonly rt: Runtime,
    readonly prefix = "",
    opts: StateDictOptions & { record?: Set<string>; ownsRuntime?: boolean } = {},
  ) {
    this.ignored = opts.ignore ?? (() => false);
    this.strict = opts.strict ?? true;
    this.record = opts.record;
    this.life = new ModuleLife(rt, opts.ownsRuntime ?? false);
  }

  /** Record a missing tensor; past `MAX_MISSING` of them, throw everything found so far. */
  private missing(name: string, shape: readonly number[]): void {
    this.faults.addMissing(name, shape);
    if (this.faults.missing.length > MAX_MISSING) {
      this.faults.throwIfAny(
        `model: stopped after ${MAX_MISSING} missing tensors (does the config ask for more layers than the checkpoint holds?)`,
      );
    }
  }

  /** The scope of the module tree's root. */
  root(): WeightScope {
    return new WeightScope(this, this.prefix);
  }

  /** @internal fetch `name`, check dtype and shape, copy it into the heap. */
  take(name: string, shape: readonly number[]): Param {
    if (this.record) {
      if (this.source.has(name)) this.record.add(name);
      else this.missing(name, shape);
      return { name, ptr: 0, shape };
    }
    if (!this.source.has(name)) {
      this.missing(name, shape);
      return { name, ptr: 0, shape };
    }
    this.used.add(name);
    const t = this.source.get(name);
    if (!this.faults.check(name, t, shape)) return { name, ptr: 0, shape };
    const ptr = this.rt.heap.put(t.data as Float32Array);
    return { name, ptr, shape };
  }

  /** @internal */
  present(name: string): boolean {
    return this.source.has(name);
  }

  /** Tensors under the prefix that no module asked for. */
  unexpected(): string[] {
    return this.source
      .names()
      .filter((n) => n.startsWith(this.prefix) && !this.used.has(n) && !this.ignored(n))
      .sort();
  }

  /**
   * Report every problem met while loading (missing, unexpected, wrong shape or dtype) in one
   * `WeightsError` whose `names` are the full tensor names at fault. Returns normally when the
   * weights fit exactly.
   */
  finish(): void {
    if (this.strict) for (const n of this.unexpected()) this.faults.addUnexpected(n);
    this.faults.throwIfAny("model", Number.POSITIVE_INFINITY);
  }
}

/** A prefix inside a `StateDict` (one module's view); `pp` descends one level. */
export class WeightScope {
  constructor(
    readonly dict: StateDict,
    readonly prefix: string,
  ) {}

  get rt(): Runtime {
    return this.dict.rt;
  }

  /** The lifetime the modules of this dict share. */
  get life(): ModuleLife {
    return this.dict.life;
  }

  /** The sub-scope `prefix + name + "."` (candle's `vb.pp`). */
  pp(name: string | number): WeightScope {
    return new WeightScope(this.dict, `${this.prefix}${name}.`);
  }

  /** The full name of a tensor of this scope. */
  full(name: string): string {
    return this.prefix + name;
  }

  /** A required f32 tensor of exactly this shape (recorded as missing/mismatched otherwise). */
  get(name: string, shape: readonly number[]): Param {
    return this.dict.take(this.full(name), shape);
  }

  /** Whether the source holds `name` in this scope (to detect an optional tensor). */
  has(name: string): boolean {
    return this.dict.present(this.full(name));
  }
}

/**
 * Build a module tree from `source` under `prefix` and check the weights: throws one `WeightsError`
 * listing every missing, unexpected (unless `strict: false`) or mis-shaped tensor by full name.
 * Without `runtime`, the tree gets a runtime of its own, which `dispose()` on its modules (or a
 * failed load) gives back to core.
 * @example
 * ```ts
 * const gru = loadModule(file, (s) => new GRU(s, { inputSize: 4, hiddenSize: 6 }), { runtime: rt });
 * ```
 */
export function loadModule<T>(
  source: TensorSource,
  build: (scope: WeightScope) => T,
  opts: StateDictOptions & { runtime?: Runtime; prefix?: string } = {},
): T {
  const rt = nnRuntime(opts.runtime);
  const ownsRuntime = !opts.runtime;
  const sd = new StateDict(source, rt, opts.prefix ?? "", { ignore: opts.ignore, strict: opts.strict, ownsRuntime });
  try {
    const m = build(sd.root());
    sd.finish();
    return m;
  } catch (e) {
    if (ownsRuntime) releaseRuntime(rt);
    throw e;
  }
}

/** A file whose tensors are read on demand (core's `openSafetensors`: a `Blob`, a path, a URL). */
export interface AsyncTensorSource {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Promise<Tensor>;
}

/**
 * `loadModule` over a lazily read file: a dry run of `build` collects the names the module tree
 * asks for, only those tensors are read (one by one), then the tree is built and checked as by
 * `loadModule` (unexpected tensors under the prefix are still reported).
 * @example
 * ```ts
 * const file = await openSafetensors(new URL("./model.safetensors", import.meta.url));
 * const enc = await loadModuleAsync(file, (s) => new TransformerEncoder(s, cfg), { prefix: "transformer.encoder." });
 * ```
 */
export async function loadModuleAsync<T>(
  source: AsyncTensorSource,
  build: (scope: WeightScope) => T,
  opts: StateDictOptions & { runtime?: Runtime; prefix?: string } = {},
): Promise<T> {
  const wanted = new Set<string>();
  const namesOnly: TensorSource = {
    names: () => source.names(),
    has: (n) => source.has(n),
    get: (n) => {
      throw new WeightsError(`tensor "${n}" is not read in a dry run`, [n]);
    },
  };
  build(new StateDict(namesOnly, createRefRuntime(), opts.prefix ?? "", { record: wanted }).root());
  const fetched = new Map<string, Tensor>();
  for (const n of wanted) fetched.set(n, await source.get(n));
  const view: TensorSource = {
    names: () => source.names(),
    has: (n) => source.has(n),
    get: (n) => {
      const t = fetched.get(n);
      if (!t) throw new WeightsError(`tensor "${n}" was not read`, [n]);
      return t;
    },
  };
  return loadModule(view, build, opts);
}
