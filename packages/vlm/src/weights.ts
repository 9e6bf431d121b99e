/**
 * Checkpoint access shared by the components: a tensor source (a parsed safetensors file, a lazy
 * one from core's `openSafetensors`, or a Map), a prefix view of it (`vision_model.`,
 * `language_model.`) that the ViT and GPT-2 loaders read as if it were their own checkpoint, and the
 * name/shape check that every loader here runs before it copies anything.
 */
import { type Heap, type SafetensorsDType, type Tensor, tensorDtypeFor, WeightsError } from "@wasmformer/core";

/** Named tensors: in memory (sync `get`) or lazy (`info` without reading, async `get`). */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor | Promise<Tensor>;
  info?(name: string): { dtype: SafetensorsDType; shape: readonly number[] };
}

/** A `WeightSource` over a record or Map (tests, hand-built models). */
export function weightSource(tensors: Record<string, Tensor> | Map<string, Tensor>): WeightSource {
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

const isLazy = (s: WeightSource): boolean => typeof s.info === "function" && "header" in s;

/**
 * The tensors of `src` whose names start with `prefix`, under their names without it. A lazy
 * source stays lazy (the view keeps `info` and `header`, which the ViT loader looks for).
 */
export function prefixView(src: WeightSource, prefix: string): WeightSource {
  const names = src.names().filter((n) => n.startsWith(prefix));
  const inner = new Set(names.map((n) => n.slice(prefix.length)));
  const view: WeightSource & { header?: unknown } = {
    names: () => [...inner],
    has: (n) => inner.has(n),
    get: (n) => {
      if (!inner.has(n)) throw new WeightsError(`no tensor "${prefix}${n}"`, [prefix + n]);
      return src.get(prefix + n);
    },
  };
  if (typeof src.info === "function") {
    const info = src.info.bind(src);
    view.info = (n) => info(prefix + n);
  }
  if (isLazy(src)) view.header = (src as unknown as { header: unknown }).header;
  return view;
}

/** dtype (core dtype) and shape of a tensor, without reading a lazy source's data. */
export async function tensorMeta(
  src: WeightSource,
  name: string,
): Promise<{ dtype: string; shape: readonly number[] }> {
  if (typeof src.info === "function") {
    const i = src.info(name);
    return { dtype: tensorDtypeFor(i.dtype), shape: i.shape };
  }
  const t = await src.get(name);
  return { dtype: t.dtype, shape: t.shape };
}

/** One expected parameter. */
export interface Want {
  name: string;
  shape: number[];
}

/** What a name check found. */
export interface WeightFaults {
  missing: string[];
  wrong: string[];
  unexpected: string[];
  messages: string[];
}

export const emptyFaults = (): WeightFaults => ({ missing: [], wrong: [], unexpected: [], messages: [] });

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * Check the expected parameters, and every name of `src` that `owns` claims and that is neither
 * expected nor `ignorable` (reported as unexpected).
 */
export async function checkWeights(
  src: WeightSource,
  wants: readonly Want[],
  owns: (name: string) => boolean,
  ignorable: (name: string) => boolean,
  faults: WeightFaults = emptyFaults(),
): Promise<WeightFaults> {
  for (const w of wants) {
    if (!src.has(w.name)) {
      faults.missing.push(w.name);
      faults.messages.push(`missing "${w.name}" ${fmt(w.shape)}`);
      continue;
    }
    const t = await tensorMeta(src, w.name);
    if (t.dtype !== "f32") {
      faults.wrong.push(w.name);
      faults.messages.push(`"${w.name}" has dtype ${t.dtype}, expected a floating-point tensor`);
    } else if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
      faults.wrong.push(w.name);
      faults.messages.push(`"${w.name}" has shape ${fmt(t.shape)}, the config needs ${fmt(w.shape)}`);
    }
  }
  const known = new Set(wants.map((w) => w.name));
  for (const n of src.names()) {
    if (owns(n) && !known.has(n) && !ignorable(n)) {
      faults.unexpected.push(n);
      faults.messages.push(`unexpected "${n}"`);
    }
  }
  return faults;
}

/** Throw the `WeightsError` for `faults` (if any), listing up to 12 of them. */
export function throwFaults(faults: WeightFaults, what: string): void {
  const m = faults.messages;
  if (m.length === 0) return;
  const more = m.length > 12 ? `; … and ${m.length - 12} more` : "";
  throw new WeightsError(`checkpoint does not match the ${what}: ${m.slice(0, 12).join("; ")}${more}`, [
    ...faults.missing,
    ...faults.wrong,
    ...faults.unexpected,
  ]);
}

/** Copy a checked tensor into the heap; returns its pointer. */
export async function putTensor(heap: Heap, src: WeightSource, name: string): Promise<number> {
  const t = await src.get(name);
  return heap.put(t.data as Float32Array);
}

/** Copy several `[rows_i, cols]` tensors into one stacked `[Σ rows_i, cols]` buffer (e.g. q; k; v). */
export async function putStacked(heap: Heap, src: WeightSource, names: readonly string[]): Promise<number> {
  const parts: Float32Array[] = [];
  for (const n of names) parts.push((await src.get(n)).data as Float32Array);
  const total = parts.reduce((a, p) => a + p.length, 0);
  const ptr = heap.allocF32(total);
  let off = 0;
  for (const p of parts) {
    heap.f32(ptr + off * 4, p.length).set(p);
    off += p.length;
  }
  return ptr;
}

/** Floats of a shape. */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
