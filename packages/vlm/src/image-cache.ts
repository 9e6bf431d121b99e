/**
 * A small cache of values computed from pixel tensors, keyed on what the tensor holds (dtype, shape
 * and bytes), not on the object: a tensor refilled in place with a new frame is a new image, an equal
 * copy is the same image. Lookup: a 32-bit FNV-1a hash of the bytes picks the candidates, a full
 * compare against the stored copy confirms a hit. The least recently used entry goes first.
 */
import type { Tensor } from "@wasmformer/core";

interface Entry<V> {
  hash: number;
  dtype: string;
  shape: readonly number[];
  bytes: Uint8Array; // a copy of the tensor's data
  value: V;
}

/** The tensor's data as bytes (a view, not a copy). */
const bytesOf = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** FNV-1a over 32-bit words (then the tail bytes), mixed with the shape. */
export function contentHash(t: Tensor): number {
  let b = bytesOf(t);
  if (b.byteOffset % 4 !== 0) b = b.slice(); // words need an aligned start
  let h = 0x811c9dc5;
  for (const d of t.shape) h = Math.imul(h ^ d, 0x01000193);
  const words = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193);
  for (let i = words.length * 4; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class TensorContentCache<V> {
  private entries: Entry<V>[] = []; // most recently used last

  /** @param limit entries kept (each holds a copy of its tensor's bytes) */
  constructor(readonly limit = 8) {}

  get size(): number {
    return this.entries.length;
  }

  /** The value stored for a tensor with the same dtype, shape and bytes, if any. */
  get(t: Tensor): V | undefined {
    const hash = contentHash(t);
    const bytes = bytesOf(t);
    const i = this.entries.findIndex(
      (e) =>
        e.hash === hash &&
        e.dtype === t.dtype &&
        e.shape.length === t.shape.length &&
        e.shape.every((d, k) => d === t.shape[k]) &&
        sameBytes(e.bytes, bytes),
    );
    if (i < 0) return undefined;
    const [e] = this.entries.splice(i, 1);
    this.entries.push(e!);
    return e!.value;
  }

  /** Store `value` for the tensor's current content (a copy of it is kept). */
  set(t: Tensor, value: V): void {
    this.entries.push({ hash: contentHash(t), dtype: t.dtype, shape: [...t.shape], bytes: bytesOf(t).slice(), value });
    while (this.entries.length > this.limit) this.entries.shift();
  }

  clear(): void {
    this.entries = [];
  }
}
