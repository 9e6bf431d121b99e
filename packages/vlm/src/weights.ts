/**
 * Checkpoint access shared by the components: a tensor source (a parsed safetensors file, a lazy
 * one from core's `openSafetensors`, or a Map), a prefix view of it (`vision_model.`,
 * `language_model.`) that the ViT and GPT-2 loaders read as if it were their own checkpoint, and
 * copying checked tensors into a heap (the name/shape check itself is core's `checkTensors`).
 */
import { type CheckableSource, type Heap, WeightsError } from "@wasmformer/core";

/**
 * Named tensors: in memory (sync `get`) or lazy (`info` without reading, async `get`); a
 * `weightSource(record | Map)` for tests and hand-built models.
 */
export type WeightSource = CheckableSource;
export { tensorSource as weightSource } from "@wasmformer/core";

/**
 * The tensors of `src` whose names start with `prefix`, under their names without it. A lazy
 * source stays lazy (the view keeps `info`).
 */
export function prefixView(src: WeightSource, prefix: string): WeightSource {
  const names = src.names().filter((n) => n.startsWith(prefix));
  const inner = new Set(names.map((n) => n.slice(prefix.length)));
  const view: WeightSource = {
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
  return view;
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
