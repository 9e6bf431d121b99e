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
  formatShape,
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
 * A tensor already in the heap of the runtime it is loaded with (f32, contiguous, `ptr` a byte
 * pointer): `StateDict` checks its dtype and shape and uses it in place, without a copy.
 */
export interface PlacedTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly ptr: number;
}

/** Weights placed in a runtime heap beforehand (see `HeapTensors`): a `StateDict` source that is never copied. */
export interface PlacedSource {
  names(): string[];
  has(name: string): boolean;
  placed(name: string): PlacedTensor;
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
   * @param source the tensors (not copied until asked for; a `PlacedSource` must be in `rt`'s heap
   *   and is used in place)
   * @param rt the runtime whose heap receives the weights
   * @param prefix the module tree's prefix in `source` (`""`, or e.g. `"transformer."`)
   * @param opts.record a dry run: only collect the names the modules ask for (nothing is read;
   *   names absent from `source` still count towards `MAX_MISSING`)
   * @param opts.ownsRuntime the caller created `rt` for these modules: their `dispose()` releases it
   */
  constructor(
    readonly source: TensorSource | PlacedSource,
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
    if ("placed" in this.source) {
      const p = this.source.placed(name);
      return this.faults.check(name, p, shape) ? { name, ptr: p.ptr, shape } : { name, ptr: 0, shape };
    }
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
  source: TensorSource | PlacedSource,
  build: (scope: WeightScope) => T,
  opts: StateDictOptions & { runtime?: Runtime; prefix?: string } = {},
): T {
  const rt = nnRuntime(opts.runtime);
  return buildChecked(source, build, rt, !opts.runtime, opts);
}

/** Build on `rt` and check; a failure releases `rt` when the tree was to own it. */
function buildChecked<T>(
  source: TensorSource | PlacedSource,
  build: (scope: WeightScope) => T,
  rt: Runtime,
  ownsRuntime: boolean,
  opts: StateDictOptions & { prefix?: string },
): T {
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

/**
 * A `PlacedSource` filled one tensor at a time: `place`/`stack` read a tensor, copy it into `rt`'s
 * heap and drop the JS copy before the next one is read, so loading holds the weights once (in the
 * heap) plus one tensor, not the whole checkpoint twice.
 */
export class HeapTensors implements PlacedSource {
  private readonly map = new Map<string, PlacedTensor>();

  /**
   * @param rt the runtime whose heap receives the tensors (the one the modules are loaded with)
   * @param allNames every name of the checkpoint (default: the placed ones), so that strict loading
   *   still reports the tensors nothing asked for
   */
  constructor(
    readonly rt: Runtime,
    private readonly allNames?: () => string[],
  ) {}

  names(): string[] {
    return this.allNames ? this.allNames() : [...this.map.keys()];
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  placed(name: string): PlacedTensor {
    const p = this.map.get(name);
    if (!p) throw new WeightsError(`tensor "${name}" was not placed in the heap`, [name]);
    return p;
  }

  /** Read `name` and copy it into the heap as it is (its dtype and shape are checked when a module asks for it). */
  async place(name: string, src: ReadableTensors): Promise<PlacedTensor> {
    const meta = src.info?.(name);
    let p: PlacedTensor;
    if (meta?.dtype === "F32" && src.readRaw) {
      const ptr = this.rt.heap.allocF32(meta.shape.reduce((a, b) => a * b, 1));
      await this.readRaw(src, name, ptr);
      p = { dtype: "f32", shape: [...meta.shape], ptr };
    } else {
      const t = await src.get(name);
      p = { dtype: t.dtype, shape: [...t.shape], ptr: this.rt.heap.put(t.data as Float32Array) };
    }
    this.map.set(name, p);
    return p;
  }

  /**
   * Read `parts` one by one and place them stacked along the first axis under `name`
   * (`torch.cat(parts, 0)`), each f32 of exactly its `shape`.
   * @throws WeightsError naming the part whose dtype or shape differs from the expected one
   */
  async stack(
    name: string,
    parts: readonly { name: string; shape: readonly number[] }[],
    src: ReadableTensors,
  ): Promise<PlacedTensor> {
    const tail = parts[0]?.shape.slice(1) ?? [];
    const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    const rows = parts.reduce((r, p) => r + (p.shape[0] ?? 1), 0);
    const heap = this.rt.heap;
    const ptr = heap.allocF32(rows * size(tail));
    let at = ptr;
    for (const part of parts) {
      const meta = src.info?.(part.name);
      const raw = meta?.dtype === "F32" && src.readRaw !== undefined;
      const got = raw ? { dtype: "f32", shape: meta.shape } : await src.get(part.name);
      const faults = new WeightFaults();
      const okTail = part.shape.length === tail.length + 1 && part.shape.slice(1).every((d, i) => d === tail[i]);
      if (!okTail || !faults.check(part.name, got, part.shape)) {
        const why =
          faults.messages[0] ??
          `"${part.name}" ${formatShape(part.shape)} cannot be stacked on ${formatShape(tail)} rows`;
        throw new WeightsError(`cannot place "${name}": ${why}`, [part.name]);
      }
      if (raw) await this.readRaw(src, part.name, at);
      else heap.f32(at, size(part.shape)).set((got as Tensor).data as Float32Array);
      at += size(part.shape) * 4;
    }
    const p = { dtype: "f32", shape: [rows, ...tail], ptr };
    this.map.set(name, p);
    return p;
  }

  /** Stream the stored f32 bytes of `name` to `ptr` (a fresh heap view per chunk: memory may grow meanwhile). */
  private readRaw(src: ReadableTensors, name: string, ptr: number): Promise<void> {
    return src.readRaw!(name, (bytes, at) => this.rt.heap.u8(ptr + at, bytes.length).set(bytes));
  }
}

/**
 * Where `HeapTensors` reads from: any tensor source; with `info` and `readRaw` (core's
 * `openSafetensors` files) f32 tensors are streamed into the heap through one reused buffer,
 * with no JS copy per tensor.
 */
export interface ReadableTensors {
  get(name: string): Tensor | Promise<Tensor>;
  info?(name: string): { dtype: string; shape: readonly number[] };
  readRaw?(name: string, sink: (bytes: Uint8Array, at: number) => void): Promise<void>;
}

/** A file whose tensors are read on demand (core's `openSafetensors`: a `Blob`, a path, a URL). */
export interface AsyncTensorSource extends ReadableTensors {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Promise<Tensor>;
}

/**
 * `loadModule` over a lazily read file: a dry run of `build` collects the names the module tree
 * asks for, only those tensors are read, one by one, each copied into the heap before the next is
 * read (`HeapTensors`: the weights are never held twice), then the tree is built and checked as by
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
  const rt = nnRuntime(opts.runtime);
  const ownsRuntime = !opts.runtime;
  const mark = rt.heap.mark();
  try {
    const placed = new HeapTensors(rt, () => source.names());
    for (const n of wanted) await placed.place(n, source);
    return buildChecked(placed, build, rt, ownsRuntime, opts);
  } catch (e) {
    if (ownsRuntime) releaseRuntime(rt);
    else rt.heap.release(mark);
    throw e;
  }
}
