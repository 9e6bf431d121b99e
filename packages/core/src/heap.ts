/**
 * Linear memory shared by the kernels: byte-addressed, 16-byte aligned bump allocation with
 * stack-like marks for per-call scratch. The wasm heap is the module's own `WebAssembly.Memory`;
 * the reference heap emulates it with an `ArrayBuffer`, so both backends run the same pointer ABI.
 *
 * Views (`f32`, `i32`, `u8`) are taken fresh from the current buffer on every call: growing memory
 * detaches old buffers, so never keep a view across an `alloc`.
 */
import { WasmError } from "./errors.js";

/** Largest wasm32 memory: 65536 pages of 64 KiB. */
export const WASM32_MAX_BYTES = 65536 * 65536;
const PAGE = 65536;

export interface Heap {
  /** Allocate `bytes` (rounded up to 16), 16-byte aligned, zero-filled. Never returns 0. */
  alloc(bytes: number): number;
  /** Allocate room for `n` f32 (or i32) elements. */
  allocF32(n: number): number;
  /** Current top of the heap; pass it to `release` to free everything allocated after it. */
  mark(): number;
  /** Free everything allocated after `mark` (stack discipline). Memory is kept for reuse. */
  release(mark: number): void;
  /** Bytes in use (top − base). */
  used(): number;
  /** Grow memory so that at least `bytes` more can be allocated without growing again. */
  reserve(bytes: number): void;
  f32(ptr: number, n: number): Float32Array;
  i32(ptr: number, n: number): Int32Array;
  u8(ptr: number, n: number): Uint8Array;
  /** The whole current buffer (re-take after any alloc). */
  buffer(): ArrayBuffer;
  /** Copy a typed array into freshly allocated memory and return its pointer. */
  put(data: Float32Array | Int32Array | Uint8Array): number;
}

abstract class BumpHeap implements Heap {
  protected top: number;
  /**
   * Highest `top` ever reached: bytes at and above it have never been handed out, so they still
   * hold the zeros that memory growth provides, and `alloc` does not write them. A large plan (a
   * KV cache for every position, say) then costs address space, not resident memory, until used.
   */
  protected highWater: number;
  constructor(protected readonly base: number) {
    this.top = base;
    this.highWater = base;
  }
  protected abstract capacity(): number;
  protected abstract growTo(bytes: number): void;
  abstract buffer(): ArrayBuffer;

  alloc(bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new WasmError(`alloc: invalid size ${bytes}`);
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const ptr = this.top;
    const end = ptr + size;
    if (end > WASM32_MAX_BYTES) {
      throw new WasmError(
        `out of wasm32 memory: needed ${fmtBytes(end - this.base)} in all (${fmtBytes(size)} for this buffer), ` +
          `but wasm32 memory is at most 4 GiB`,
      );
    }
    if (end > this.capacity()) this.growTo(end);
    this.top = end;
    if (ptr < this.highWater) new Uint8Array(this.buffer(), ptr, Math.min(end, this.highWater) - ptr).fill(0);
    this.highWater = Math.max(this.highWater, end);
    return ptr;
  }
  allocF32(n: number): number {
    return this.alloc(n * 4);
  }
  mark(): number {
    return this.top;
  }
  release(mark: number): void {
    if (mark < this.base || mark > this.top) throw new WasmError(`release: bad mark ${mark}`);
    this.top = mark;
  }
  used(): number {
    return this.top - this.base;
  }
  reserve(bytes: number): void {
    const end = this.top + bytes;
    if (end > WASM32_MAX_BYTES) {
      throw new WasmError(
        `out of wasm32 memory: needed ${fmtBytes(end - this.base)}, but wasm32 memory is at most 4 GiB`,
      );
    }
    if (end > this.capacity()) this.growTo(end);
  }
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.buffer(), ptr, n);
  }
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.buffer(), ptr, n);
  }
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.buffer(), ptr, n);
  }
  put(data: Float32Array | Int32Array | Uint8Array): number {
    const ptr = this.alloc(data.byteLength);
    new Uint8Array(this.buffer(), ptr, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return ptr;
  }
}

/** Heap over a wasm instance's exported memory, starting at the module's `__heap_base`. */
export class WasmHeap extends BumpHeap {
  constructor(
    readonly memory: WebAssembly.Memory,
    heapBase: number,
  ) {
    super(Math.ceil(heapBase / 16) * 16);
  }
  protected capacity(): number {
    return this.memory.buffer.byteLength;
  }
  protected growTo(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    // grow geometrically (at least 1/8 more) so that many small allocations do not grow page by page
    const want = Math.min(WASM32_MAX_BYTES, Math.max(bytes, have + Math.floor(have / 8)));
    const pages = Math.ceil((want - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch (cause) {
      // the geometric slack may be what failed: retry with the exact need
      const exact = Math.ceil((bytes - have) / PAGE);
      try {
        this.memory.grow(exact);
      } catch {
        throw new WasmError(
          `could not grow wasm memory to ${fmtBytes(bytes)} (have ${fmtBytes(have)}): the engine refused ` +
            `(${(cause as Error).message})`,
          { cause },
        );
      }
    }
  }
  buffer(): ArrayBuffer {
    return this.memory.buffer as ArrayBuffer;
  }
}

/** Heap emulated over a plain ArrayBuffer, for the pure-TS reference backend. */
export class JsHeap extends BumpHeap {
  private buf: ArrayBuffer;
  constructor(initialBytes = 1 << 16) {
    super(16); // pointer 0 stays "null"
    this.buf = new ArrayBuffer(Math.max(initialBytes, 64));
  }
  protected capacity(): number {
    return this.buf.byteLength;
  }
  protected growTo(bytes: number): void {
    const want = Math.min(WASM32_MAX_BYTES, Math.max(bytes, this.buf.byteLength * 2));
    const next = new ArrayBuffer(Math.ceil(want / PAGE) * PAGE);
    new Uint8Array(next).set(new Uint8Array(this.buf, 0, this.top));
    this.buf = next;
    this.highWater = this.top; // nothing above top was copied: it is all fresh zeros
  }
  buffer(): ArrayBuffer {
    return this.buf;
  }
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
