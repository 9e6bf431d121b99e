/**
 * Checking a checkpoint against the tensors a model expects, shared by every model loader
 * (`@wasmformer/nn`'s `StateDict`, the ViT, GPT-2 and VLM loaders): each missing, mis-shaped,
 * wrongly typed or unexpected tensor is recorded under its full name, and all of them are reported
 * together in one `WeightsError` whose `names` list the tensors at fault.
 *
 * @example
 * ```ts
 * const faults = new WeightFaults();
 * await checkTensors(file, [{ name: "fc.weight", shape: [3, 2] }], { faults });
 * faults.throwIfAny("Linear"); // WeightsError: checkpoint does not match the Linear: missing "fc.weight" [3, 2]
 * ```
 */
import { WeightsError } from "./errors.js";
import { type SafetensorsDType, tensorDtypeFor } from "./safetensors.js";
import { formatShape, type Tensor } from "./tensor.js";

/** Anything with named tensors: a parsed safetensors file (`TensorFile`), or a `Map`-backed dict. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor;
}

/** A `TensorSource` over a plain record or Map of tensors (tests, hand-built models). */
export function tensorSource(tensors: Record<string, Tensor> | Map<string, Tensor>): TensorSource {
  const m = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  return {
    names: () => [...m.keys()],
    has: (n) => m.has(n),
    get: (n) => {
      const t = m.get(n);
      if (!t) throw new WeightsError(`no tensor "${n}"`, [n]);
      return t;
    },
  };
}

/** What a checker needs of a checkpoint: its names, and each tensor (or, cheaper, its `info`). */
export interface CheckableSource {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor | Promise<Tensor>;
  /** Dtype and shape without reading the data (safetensors files, parsed or lazy). */
  info?(name: string): { dtype: SafetensorsDType; shape: readonly number[] };
}

/** A tensor's dtype (as a core dtype) and shape. */
export interface TensorMeta {
  dtype: string;
  shape: readonly number[];
}

/** dtype (core dtype) and shape of a tensor, without reading the data when the source has `info`. */
export async function tensorMeta(src: CheckableSource, name: string): Promise<TensorMeta> {
  if (typeof src.info === "function") {
    const i = src.info(name);
    return { dtype: tensorDtypeFor(i.dtype), shape: i.shape };
  }
  const t = await src.get(name);
  return { dtype: t.dtype, shape: t.shape };
}

/** One tensor a model expects. */
export interface ExpectedTensor {
  name: string;
  shape: readonly number[];
  /** May be absent (an optional head or pooler); still checked when present. */
  optional?: boolean;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The faults found in a checkpoint, by full tensor name, with one message each (in the order
 * found); `throwIfAny` reports them all in one `WeightsError`.
 */
export class WeightFaults {
  readonly missing: string[] = [];
  /** Present with the wrong shape or a non-float dtype. */
  readonly wrong: string[] = [];
  readonly unexpected: string[] = [];
  readonly messages: string[] = [];

  /** A required tensor is absent (`note` says why it is required, if not obvious). */
  addMissing(name: string, shape?: readonly number[], note?: string): void {
    this.missing.push(name);
    this.messages.push(`missing "${name}"${shape ? ` ${formatShape(shape)}` : ""}${note ? ` (${note})` : ""}`);
  }

  /** A tensor that nothing expects. */
  addUnexpected(name: string): void {
    this.unexpected.push(name);
    this.messages.push(`unexpected "${name}"`);
  }

  /** A present tensor that does not fit for another reason (`message` names it). */
  addWrong(name: string, message: string): void {
    this.wrong.push(name);
    this.messages.push(message);
  }

  /** Check a present tensor: a float tensor of exactly `shape`. Records the fault and returns false otherwise. */
  check(name: string, got: TensorMeta, shape: readonly number[]): boolean {
    if (got.dtype !== "f32") {
      this.addWrong(name, `"${name}" has dtype ${got.dtype}, expected a floating-point tensor`);
      return false;
    }
    if (!sameShape(got.shape, shape)) {
      this.addWrong(name, `"${name}" has shape ${formatShape(got.shape)}, the config needs ${formatShape(shape)}`);
      return false;
    }
    return true;
  }

  /** True when nothing was recorded. */
  get ok(): boolean {
    return this.messages.length === 0;
  }

  /** Every name at fault: missing, then wrong, then unexpected. */
  get names(): string[] {
    return [...this.missing, ...this.wrong, ...this.unexpected];
  }

  /**
   * Throw one `WeightsError` listing the faults (the first `max` messages in full, all names in
   * `names`), or return when there are none.
   * @param what the model or module checked against (`"ViT config (hidden_size 768, …)"`)
   */
  throwIfAny(what: string, max = 12): void {
    const m = this.messages;
    if (m.length === 0) return;
    const counts = [
      this.missing.length && `${this.missing.length} missing`,
      this.wrong.length && `${this.wrong.length} wrong shape or dtype`,
      this.unexpected.length && `${this.unexpected.length} unexpected`,
    ].filter(Boolean);
    const more = m.length > max ? `; … and ${m.length - max} more` : "";
    throw new WeightsError(
      `checkpoint does not match the ${what} (${counts.join(", ")}): ${m.slice(0, max).join("; ")}${more}`,
      this.names,
    );
  }
}

/**
 * Check `src` against the expected tensors: every required one must be present, and every present
 * one must be a float tensor of its shape; then (unless `strict` is false) every name of `src` that
 * `owns` claims (default: all) and that is neither expected nor `ignore`d is unexpected, as in
 * PyTorch's strict `load_state_dict`. Faults go to `opts.faults` (so that several checks can be
 * reported together); returns the expected tensors that are present and fit.
 */
export async function checkTensors(
  src: CheckableSource,
  wants: readonly ExpectedTensor[],
  opts: {
    owns?: (name: string) => boolean;
    ignore?: (name: string) => boolean;
    faults?: WeightFaults;
    strict?: boolean;
  } = {},
): Promise<{ faults: WeightFaults; fit: Map<string, TensorMeta> }> {
  const faults = opts.faults ?? new WeightFaults();
  const fit = new Map<string, TensorMeta>();
  for (const w of wants) {
    if (!src.has(w.name)) {
      if (!w.optional) faults.addMissing(w.name, w.shape);
      continue;
    }
    const t = await tensorMeta(src, w.name);
    if (faults.check(w.name, t, w.shape)) fit.set(w.name, t);
  }
  if (opts.strict === false) return { faults, fit };
  const known = new Set(wants.map((w) => w.name));
  const owns = opts.owns ?? (() => true);
  const ignore = opts.ignore ?? (() => false);
  for (const n of src.names()) if (owns(n) && !known.has(n) && !ignore(n)) faults.addUnexpected(n);
  return { faults, fit };
}

/**
 * How many numbered blocks (layers) `{prefix}{i}.…` a checkpoint holds: 1 + the largest `i` among
 * `names` (0 when there is none). Linear in the number of names.
 */
export function countBlocks(names: Iterable<string>, prefix: string): number {
  let n = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const dot = name.indexOf(".", prefix.length);
    const index = dot < 0 ? "" : name.slice(prefix.length, dot);
    if (/^(0|[1-9][0-9]{0,8})$/.test(index)) n = Math.max(n, Number(index) + 1);
  }
  return n;
}

/**
 * Fail at once when a config asks for more numbered blocks `{prefix}{i}.` than the checkpoint
 * holds, before a loader lists the tensors of every block: that list grows with the config, not
 * with the file (`n_layer: 1e7` would exhaust the JavaScript heap). The `WeightsError` names the
 * first missing block's `sample` tensor (e.g. `"ln_1.weight"`).
 * @param field the config field that sets the count (`"n_layer"`)
 */
export function checkBlockCount(
  names: readonly string[],
  prefix: string,
  wanted: number,
  field: string,
  sample: string,
): void {
  const held = countBlocks(names, prefix);
  if (wanted <= held) return;
  const has =
    held === 0 ? "none" : held === 1 ? `1 ("${prefix}0.*")` : `${held} ("${prefix}0.*" … "${prefix}${held - 1}.*")`;
  const first = `${prefix}${held}.${sample}`;
  throw new WeightsError(
    `checkpoint does not match the config: ${field} ${wanted} asks for blocks "${prefix}0.*" … "${prefix}${wanted - 1}.*", ` +
      `the checkpoint holds ${has}; missing "${first}" and the rest of block${wanted - held > 1 ? `s ${held} … ${wanted - 1}` : ` ${held}`}`,
    [first],
  );
}
