/**
 * Loading the kernels and choosing a backend, once.
 *
 * `init()` picks, in order: the relaxed-SIMD wasm build (where the engine validates relaxed SIMD),
 * the plain SIMD build, and the pure-TS reference backend (where wasm SIMD is missing, or when asked
 * for with `backend: "ref"`). It works in Node (the .wasm is read from the package folder), in
 * browsers, workers and bundlers (`new URL("…wasm", import.meta.url)` + `instantiateStreaming`), and
 * with caller-provided bytes, a URL, a `Response` or a compiled `WebAssembly.Module`.
 *
 * Each `Runtime` owns one wasm instance and its memory: a model creates its own runtime with
 * `createRuntime()` so that its weights and scratch live in one planned heap.
 */
import { refKernels } from "./backend/ref.js";
import { relaxedSimdSupported, simdSupported, wasmImports, wrapInstance } from "./backend/wasm.js";
import { InputError, WasmError } from "./errors.js";
import { type Heap, JsHeap } from "./heap.js";
import type { Kernels } from "./kernels.js";

export type BackendName = "wasm-relaxed" | "wasm-simd" | "ref";

export interface Runtime {
  readonly backend: BackendName;
  readonly heap: Heap;
  readonly k: Kernels;
}

/**
 * Runtimes given back with `releaseRuntime`: wasm memory cannot be freed from JavaScript (it goes
 * only when the whole instance is garbage-collected), so a released runtime is emptied and handed
 * to the next `createRuntime()` of its backend. A page that swaps one model for another then reuses
 * the first model's memory at once instead of growing a second one. They are held weakly: one that
 * no model takes up is still collected.
 */
const released: WeakRef<Runtime>[] = [];
/** Heap top of each live runtime when it was new (`release` target); absent once released. */
const bases = new WeakMap<Runtime, number>();
const releasedBase = new WeakMap<Runtime, number>();
/** How many times each runtime has been released (absent: never). */
const releases = new WeakMap<Runtime, number>();

/** Where the wasm comes from: a URL (string or URL), bytes, a Response, or a compiled Module. */
export type WasmSource = string | URL | ArrayBuffer | Uint8Array | Response | WebAssembly.Module;

export interface InitOptions {
  /** Force a backend. Default: the best one this engine supports. */
  backend?: "auto" | BackendName;
  /** The plain-SIMD module (default: `core.wasm` beside this package's code). */
  wasm?: WasmSource;
  /** The relaxed-SIMD module (default: `core-relaxed.wasm` beside this package's code). */
  wasmRelaxed?: WasmSource;
}

const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

let compiled: { module: WebAssembly.Module; backend: BackendName } | undefined;
let compiling: Promise<{ module: WebAssembly.Module; backend: BackendName } | undefined> | undefined;
let forcedRef = false;
let defaultRt: Runtime | undefined;

async function bytesFromUrl(url: URL | string): Promise<ArrayBuffer | Uint8Array> {
  const u = typeof url === "string" ? new URL(url, typeof location !== "undefined" ? location.href : undefined) : url;
  if (u.protocol === "file:" && isNode) {
    const { readFile } = await import(/* @vite-ignore */ "node:fs/promises" as string);
    return readFile(u) as Promise<Uint8Array>;
  }
  const res = await fetch(u);
  if (!res.ok) throw new WasmError(`could not fetch ${u.href}: HTTP ${res.status}`);
  return res.arrayBuffer();
}

async function compileSource(src: WasmSource): Promise<WebAssembly.Module> {
  if (src instanceof WebAssembly.Module) return src;
  // strings and URLs first: merely touching the `Response` global makes Node 20 load undici (~100 ms)
  if (typeof src !== "string" && !(src instanceof URL) && typeof Response !== "undefined" && src instanceof Response) {
    const r = src as Response;
    if (
      typeof WebAssembly.compileStreaming === "function" &&
      r.headers.get("content-type")?.startsWith("application/wasm")
    ) {
      return WebAssembly.compileStreaming(r);
    }
    return WebAssembly.compile(await r.arrayBuffer());
  }
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) return WebAssembly.compile(src as BufferSource);
  const url = src as string | URL;
  const u = typeof url === "string" ? new URL(url, typeof location !== "undefined" ? location.href : undefined) : url;
  if (!(u.protocol === "file:" && isNode) && typeof WebAssembly.compileStreaming === "function") {
    try {
      return await WebAssembly.compileStreaming(fetch(u));
    } catch {
      // wrong MIME type or no streaming: fall through to bytes
    }
  }
  return WebAssembly.compile((await bytesFromUrl(u)) as BufferSource);
}

function defaultUrl(relaxed: boolean): URL {
  // literal URLs so that bundlers (Vite) rewrite them to emitted assets
  return relaxed
    ? new URL("../build/core-relaxed.wasm", import.meta.url)
    : new URL("../build/core.wasm", import.meta.url);
}

/**
 * Load and compile the kernels once (idempotent). Resolves to the backend in use.
 * @example
 * ```ts
 * import { init, matmul, Tensor } from "@wasmformer/core";
 * await init();                       // or init({ wasm: new URL("/core.wasm", location.href) })
 * ```
 */
export async function init(opts: InitOptions = {}): Promise<BackendName> {
  const want = opts.backend ?? "auto";
  if (!["auto", "wasm-relaxed", "wasm-simd", "ref"].includes(want as string)) {
    throw new InputError(
      `init: backend ${JSON.stringify(want)} is not one of "auto", "wasm-relaxed", "wasm-simd", "ref"`,
    );
  }
  if (want === "ref") {
    forcedRef = true;
    defaultRt = undefined;
    return "ref";
  }
  forcedRef = false;
  const best: BackendName = relaxedSimdSupported() ? "wasm-relaxed" : "wasm-simd";
  if (compiled && !opts.wasm && !opts.wasmRelaxed && (want === "auto" ? best : want) === compiled.backend)
    return compiled.backend;
  compiling = (async () => {
    if (!simdSupported()) {
      if (want !== "auto")
        throw new WasmError("this engine does not support wasm SIMD (required by the wasm backends)");
      return undefined;
    }
    const tryRelaxed = want === "wasm-relaxed" || (want === "auto" && relaxedSimdSupported());
    if (want === "wasm-relaxed" && !relaxedSimdSupported()) {
      throw new WasmError("this engine does not support relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd)");
    }
    if (tryRelaxed) {
      const module = await compileSource(opts.wasmRelaxed ?? defaultUrl(true));
      return { module, backend: "wasm-relaxed" as const };
    }
    const module = await compileSource(opts.wasm ?? defaultUrl(false));
    return { module, backend: "wasm-simd" as const };
  })();
  try {
    compiled = await compiling;
  } catch (e) {
    if (e instanceof WasmError) throw e;
    throw new WasmError(`could not load the kernel module: ${(e as Error).message}`, { cause: e });
  }
  defaultRt = undefined;
  return compiled ? compiled.backend : "ref";
}

/** The backend new runtimes get: the compiled wasm after `init()`, otherwise the reference backend. */
export function backendName(): BackendName {
  return forcedRef || !compiled ? "ref" : compiled.backend;
}

/**
 * A fresh runtime with its own memory (one wasm instance), for a model to plan its buffers in.
 * Call `await init()` first to get the wasm backend; without it the reference backend is used.
 */
export function createRuntime(opts: { backend?: BackendName } = {}): Runtime {
  const want = opts.backend ?? backendName();
  for (let i = released.length - 1; i >= 0; i--) {
    const rt = released[i].deref();
    if (rt && rt.backend !== want) continue;
    released.splice(i, 1);
    if (!rt || (want !== "ref" && compiled?.backend !== want)) continue;
    const base = releasedBase.get(rt) as number;
    releasedBase.delete(rt);
    bases.set(rt, base);
    return rt;
  }
  const rt = newRuntime(want);
  bases.set(rt, rt.heap.mark());
  return rt;
}

/**
 * Give a runtime's memory back (a model's `dispose()` calls it): everything allocated in it is
 * freed at once and the memory is reused by the next `createRuntime()` of the same backend. The
 * caller must not use the runtime, nor any pointer into it, afterwards. Releasing a runtime twice,
 * or one that `createRuntime` did not make, does nothing.
 */
export function releaseRuntime(rt: Runtime): void {
  const base = bases.get(rt);
  if (base === undefined) return;
  bases.delete(rt);
  releases.set(rt, runtimeReleases(rt) + 1);
  rt.heap.release(base);
  if (rt === defaultRt) defaultRt = undefined;
  releasedBase.set(rt, base);
  released.push(new WeakRef(rt));
}

/**
 * How many times `rt` has been given back with `releaseRuntime`. An object that keeps pointers into
 * a runtime it does not own (an optimizer over a model's parameters) notes this count and refuses
 * to run once it changes: the memory may by then belong to another model.
 */
export function runtimeReleases(rt: Runtime): number {
  return releases.get(rt) ?? 0;
}

function newRuntime(want: BackendName): Runtime {
  if (want === "ref" || !compiled) {
    if (want !== "ref" && !compiled) throw new WasmError(`backend "${want}" requested but init() has not loaded it`);
    const heap = new JsHeap();
    return { backend: "ref", heap, k: refKernels(heap) };
  }
  if (want !== compiled.backend) throw new WasmError(`backend "${want}" requested but "${compiled.backend}" is loaded`);
  const instance = new WebAssembly.Instance(compiled.module, wasmImports());
  const { kernels, heap } = wrapInstance(instance);
  return { backend: compiled.backend, heap, k: kernels };
}

/** The shared runtime used by the `Tensor` ops (created on first use; scratch is released after each op). */
export function defaultRuntime(): Runtime {
  if (!defaultRt || defaultRt.backend !== backendName()) defaultRt = createRuntime();
  return defaultRt;
}

/** A reference-backend runtime (for tests: the oracle). */
export function createRefRuntime(): Runtime {
  const heap = new JsHeap();
  return { backend: "ref", heap, k: refKernels(heap) };
}
