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
import { type Heap, JsHeap, WasmHeap } from "./heap.js";
import type { Kernels } from "./kernels.js";
import { rnnSyncBytes, type ThreadedExports, TILE_KERNELS, threadedKernels } from "./threaded-kernels.js";
import { ThreadPool, threadsUnavailableReason, usableCores } from "./threads.js";

export type BackendName = "wasm-relaxed" | "wasm-simd" | "ref";

export interface Runtime {
  readonly backend: BackendName;
  readonly heap: Heap;
  readonly k: Kernels;
  /** Threads its kernels use (1: the single-thread build, or the reference backend). */
  readonly threads: number;
}

/** What `init` got for threads, and why (see `threadsInfo`). */
export interface ThreadsInfo {
  /** Threads new runtimes use (1 = no worker pool). */
  threads: number;
  /** What was asked for: a count, or "auto" (the usable cores, at most `MAX_AUTO_THREADS`). */
  requested: number | "auto";
  /** Why fewer threads than asked for (not cross-origin isolated, no SharedArrayBuffer, …). */
  reason?: string;
  /** Kernel calls split over the threads since the pool started, and the tiles workers ran. */
  splitCalls: number;
  workerTiles: number;
}

/** The default thread count's cap: past 8 the GEMMs of these models are bound by memory bandwidth. */
export const MAX_AUTO_THREADS = 8;

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
  /**
   * Threads for the kernels (the calling thread plus a pool of workers). Default: the usable
   * cores, at most `MAX_AUTO_THREADS` (in Node, `WASMFORMER_THREADS` overrides it); 1 where
   * threads are not available (no SharedArrayBuffer,
   * a page that is not cross-origin isolated) — `threadsInfo()` says what was used and why.
   * A failure to start the threads is never an error: a warning, then 1 thread.
   */
  threads?: number;
  /** The plain-SIMD threaded module (default: `core-threads.wasm` beside this package's code). */
  wasmThreads?: WasmSource;
  /** The relaxed-SIMD threaded module (default: `core-relaxed-threads.wasm`). */
  wasmRelaxedThreads?: WasmSource;
}

const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

let compiled: { module: WebAssembly.Module; backend: BackendName } | undefined;
let compiling: Promise<{ module: WebAssembly.Module; backend: BackendName } | undefined> | undefined;
let forcedRef = false;
let defaultRt: Runtime | undefined;
/** The threaded module and its pool (absent: one thread). */
let threaded: { module: WebAssembly.Module; backend: BackendName; pool: ThreadPool } | undefined;
let threadInfo: Omit<ThreadsInfo, "splitCalls" | "workerTiles"> = { threads: 1, requested: "auto" };
let nextRuntimeId = 1;
/** The pool each threaded runtime is attached to. */
const poolOf = new WeakMap<Runtime, ThreadPool>();
const detachOnGc =
  typeof FinalizationRegistry === "function"
    ? new FinalizationRegistry<{ pool: ThreadPool; id: number }>(({ pool, id }) => pool.detach(id))
    : undefined;

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

function defaultUrl(relaxed: boolean, threads = false): URL {
  // literal URLs so that bundlers (Vite) rewrite them to emitted assets
  if (threads) {
    return relaxed
      ? new URL("../build/core-relaxed-threads.wasm", import.meta.url)
      : new URL("../build/core-threads.wasm", import.meta.url);
  }
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
  const t = opts.threads;
  if (t !== undefined && (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > 256)) {
    throw new InputError(`init: threads must be an integer in [1, 256], got ${String(t)}`);
  }
  if (want === "ref") {
    forcedRef = true;
    defaultRt = undefined;
    stopThreads();
    threadInfo = { threads: 1, requested: t ?? "auto", reason: "the reference backend has no threads" };
    return "ref";
  }
  forcedRef = false;
  const best: BackendName = relaxedSimdSupported() ? "wasm-relaxed" : "wasm-simd";
  if (compiled && !opts.wasm && !opts.wasmRelaxed && (want === "auto" ? best : want) === compiled.backend) {
    await setupThreads(opts);
    return compiled.backend;
  }
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
  await setupThreads(opts);
  return compiled ? compiled.backend : "ref";
}

/**
 * Threads for new runtimes: reuse the pool when the count and build are unchanged, else stop it
 * and start another. Never throws for lack of threads: warns and uses one.
 */
async function setupThreads(opts: InitOptions): Promise<void> {
  const requested = opts.threads ?? "auto";
  const explicit = opts.threads !== undefined;
  const fallback = (reason: string, warn: boolean) => {
    stopThreads();
    threadInfo = { threads: 1, requested, reason };
    if (warn) console.warn(`@wasmformer/core: using 1 thread: ${reason}`);
  };
  if (!compiled) return fallback("wasm SIMD is not available (reference backend)", explicit && requested !== 1);
  const reason = threadsUnavailableReason();
  if (reason) {
    // a page that is not isolated is worth a warning even by default: that is the usual surprise
    return fallback(reason, (explicit && requested !== 1) || /isolated/.test(reason));
  }
  const cores = await usableCores();
  const env = requested === "auto" ? envThreads() : undefined;
  const n = requested === "auto" ? (env ?? Math.max(1, Math.min(cores, MAX_AUTO_THREADS))) : requested;
  if (n === 1) {
    const why = requested !== "auto" ? "1 thread requested" : env ? "WASMFORMER_THREADS=1" : "one usable core";
    return fallback(why, false);
  }
  const relaxed = compiled.backend === "wasm-relaxed";
  const src = relaxed ? opts.wasmRelaxedThreads : opts.wasmThreads;
  if ((relaxed ? opts.wasmRelaxed : opts.wasm) && !src) {
    // a caller who supplies the module (a custom build or URL) supplies the threaded one too
    const which = relaxed ? "wasmRelaxed without wasmRelaxedThreads" : "wasm without wasmThreads";
    return fallback(`a custom kernel module was given (${which})`, explicit && requested !== 1);
  }
  if (threaded?.pool.running && threaded.pool.threads === n && threaded.backend === compiled.backend && !src) {
    threadInfo = { threads: n, requested };
    return;
  }
  stopThreads();
  let module: WebAssembly.Module;
  try {
    module = await compileSource(src ?? defaultUrl(relaxed, true));
  } catch (e) {
    return fallback(`could not load the threaded kernel module (${(e as Error).message})`, true);
  }
  try {
    const pool = await ThreadPool.create(n, TILE_KERNELS);
    threaded = { module, backend: compiled.backend, pool };
    threadInfo = { threads: n, requested };
  } catch (e) {
    fallback(`a worker failed to start (${(e as Error).message})`, true);
  }
}

/** Node: `WASMFORMER_THREADS` (an integer in [1, 256]) replaces the default count. */
function envThreads(): number | undefined {
  const v = isNode ? process.env.WASMFORMER_THREADS : undefined;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (Number.isInteger(n) && n >= 1 && n <= 256) return n;
  console.warn(`@wasmformer/core: ignoring WASMFORMER_THREADS=${JSON.stringify(v)} (not an integer in [1, 256])`);
  return undefined;
}

function stopThreads(): void {
  if (!threaded) return;
  threaded.pool.terminate();
  threaded = undefined;
  threadInfo = { threads: 1, requested: threadInfo.requested };
  defaultRt = undefined;
}

/** How many threads new runtimes use, what was asked for and, when fewer, why. */
export function threadsInfo(): ThreadsInfo {
  const pool = threaded?.pool;
  return { ...threadInfo, splitCalls: pool?.splitCalls ?? 0, workerTiles: pool?.workerTiles ?? 0 };
}

/**
 * Stop the worker pool (`init` starts another). Runtimes that used it go on with one thread; their
 * results do not change. Node processes exit without it (idle workers do not keep them alive).
 */
export function terminateThreads(): void {
  stopThreads();
  threadInfo = { threads: 1, requested: threadInfo.requested, reason: "terminateThreads() was called" };
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
    // a threaded runtime is reused only with the pool it is attached to
    if (rt && (rt.backend !== want || poolOf.get(rt) !== (wantThreads(want) > 1 ? threaded?.pool : undefined)))
      continue;
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
    return { backend: "ref", heap, k: refKernels(heap), threads: 1 };
  }
  if (want !== compiled.backend) throw new WasmError(`backend "${want}" requested but "${compiled.backend}" is loaded`);
  if (wantThreads(want) > 1 && threaded) return newThreadedRuntime(threaded);
  const instance = new WebAssembly.Instance(compiled.module, wasmImports());
  const { kernels, heap } = wrapInstance(instance);
  return { backend: compiled.backend, heap, k: kernels, threads: 1 };
}

/** Threads a new runtime of this backend gets. */
function wantThreads(backend: BackendName): number {
  return threaded && threaded.backend === backend && threaded.pool.running ? threaded.pool.threads : 1;
}

/** Pages of a threaded runtime's memory at first (≥ the module's declared minimum of 48). */
const SHARED_INITIAL_PAGES = 64;

/**
 * A runtime on the threaded build: a shared memory, the calling thread's instance, and one
 * instance per worker with its own scratch. Falls back to one thread (with a warning) when the
 * workers cannot take the runtime.
 */
function newThreadedRuntime(t: { module: WebAssembly.Module; backend: BackendName; pool: ThreadPool }): Runtime {
  let memory: WebAssembly.Memory | undefined;
  // the largest maximum first: a 32-bit host may refuse to reserve 4 GiB of address space
  for (const maximum of [65536, 32768, 16384]) {
    try {
      memory = new WebAssembly.Memory({
        initial: SHARED_INITIAL_PAGES,
        maximum,
        shared: true,
      } as WebAssembly.MemoryDescriptor);
      break;
    } catch {
      // try a smaller maximum
    }
  }
  if (!memory) throw new WasmError("could not create a shared wasm memory for the threaded kernels");
  const imports = wasmImports();
  (imports.env as Record<string, unknown>).memory = memory;
  const instance = new WebAssembly.Instance(t.module, imports);
  const { kernels, heap: staticHeap } = wrapInstance(instance);
  const ex = kernels as unknown as ThreadedExports & { scratchBytes(): number };
  const id = nextRuntimeId++;
  const workers = t.pool.threads - 1;
  // the workers' scratch sits between the static data and the heap, out of the allocator's reach
  const bytes = Math.ceil((ex.scratchBytes() >>> 0) / 64) * 64;
  const scratch = Math.ceil(staticHeap.mark() / 64) * 64;
  // then rnnSteps' sync words
  const syncAt = scratch + workers * bytes;
  const end = syncAt + rnnSyncBytes(t.pool.threads);
  staticHeap.reserve(end - staticHeap.mark());
  const heap = new WasmHeap(memory, end);
  if (!t.pool.attach(id, t.module, memory, scratch, bytes)) {
    console.warn("@wasmformer/core: the worker threads could not instantiate the kernels; this runtime uses 1 thread");
    return { backend: t.backend, heap, k: kernels, threads: 1 };
  }
  const pool = t.pool;
  const rt: Runtime = {
    backend: t.backend,
    heap,
    k: threadedKernels(ex, pool, id, { memory, at: syncAt }),
    // live: 1 once the pool is stopped (the kernels then run on the calling thread)
    get threads() {
      return pool.has(id) ? pool.threads : 1;
    },
  };
  poolOf.set(rt, pool);
  detachOnGc?.register(rt, { pool, id });
  return rt;
}

/** The shared runtime used by the `Tensor` ops (created on first use; scratch is released after each op). */
export function defaultRuntime(): Runtime {
  if (!defaultRt || defaultRt.backend !== backendName()) defaultRt = createRuntime();
  return defaultRt;
}

/** A reference-backend runtime (for tests: the oracle). */
export function createRefRuntime(): Runtime {
  const heap = new JsHeap();
  return { backend: "ref", heap, k: refKernels(heap), threads: 1 };
}
