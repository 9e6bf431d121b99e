/**
 * The worker pool behind the threaded wasm build: `threads − 1` workers (Node `worker_threads`, or
 * browser `Worker`s — also when the pool is created inside a Worker) that run kernel tiles on the
 * runtimes' shared memories, plus the calling thread, which takes tiles too.
 *
 * Protocol (one `SharedArrayBuffer` of control words and tile arguments, no messages per call):
 * the caller writes each tile's argument list (f64, so i32 pointers and f32 scalars convert to the
 * wasm parameter types exactly as in a direct call), the kernel and runtime ids and the tile count,
 * then bumps GEN and notifies it. `CLAIM` holds (job tag << 12 | tiles left): a thread takes tile
 * `left − 1` with a compare-exchange that also checks the tag, so a thread that wakes late can never
 * run a tile of a newer job. Each finished tile increments DONE; the caller returns once DONE equals
 * the tile count. Idle workers spin briefly, then sleep in `Atomics.wait` on GEN.
 *
 * A tile is a call of the same kernel on a sub-block with the arithmetic of the whole call for
 * each of its elements (see `threaded-kernels.ts`), so results do not depend on the thread count.
 *
 * The main thread of a browser page may not block (`Atomics.wait` throws there): a pool created
 * on it waits for the other threads' last tiles by spinning on `Atomics.load` instead. Workers are
 * still used, but the page's main thread is busy for the whole kernel either way: run models in a
 * Worker.
 */
import { WasmError } from "./errors.js";

const GEN = 0;
const CLAIM = 1;
const DONE = 2;
const FN = 3;
const RT = 4;
const TILES = 5;
const NARGS = 6;
const ERR = 7;
const ATTACHED = 8;
/** Byte offset of the argument table in the control buffer. */
const ARGS_AT = 64;
/** Most tiles per call (the claim word keeps 12 bits for them). */
export const MAX_TILES = 1024;
/** Most arguments of a kernel call. */
export const MAX_ARGS = 20;
/**
 * Busy-wait iterations before sleeping (idle workers) or blocking (the caller): about 0.5 ms (a
 * poll takes ~10 ns here). A model runs one kernel call after another with a little JS between
 * them; a worker that slept in between woke late for the next call, so the caller ran its tiles
 * alone. ViT-Tiny at 2 threads, each run after a 100 ms pause: 42.5 ms (CPU/wall 1.47) with 2,000
 * polls (~20 µs), 37.9 ms with 20,000, 32.4 ms (1.98) with 100,000 (2026-12-06). The cost: a worker
 * spins this long after the last call of a burst.
 */
const SPIN = 50000;
/** Job codes below 0: leave the loop to read messages (-1), stop the worker (-2). */
const YIELD = -1;
const STOP = -2;

/**
 * The workers' code, as a string: it is started from a `data`/`blob` source or with Node's
 * `eval: true`, so no bundler has to find a worker file. Kept small: it only runs tiles.
 */
const WORKER_BODY = `
"use strict";
let ctl, args, names, gen = 0;
const instances = new Map();
function handle(m) {
  if (m.type === "init") {
    ctl = new Int32Array(m.control);
    args = new Float64Array(m.control, ${ARGS_AT});
    names = m.names;
    gen = Atomics.load(ctl, ${GEN});
    post({ type: "ready" });
    loop();
  } else if (m.type === "attach") {
    try {
      const imports = { env: { memory: m.memory, seed: () => Date.now(),
        abort(_m, _f, line, col) { throw new Error("wasm kernel aborted at line " + line + ":" + col); } } };
      const ex = new WebAssembly.Instance(m.module, imports).exports;
      ex.setScratch(m.scratch);
      instances.set(m.id, ex);
    } catch (e) {
      Atomics.store(ctl, ${ERR}, -1);
    }
    Atomics.add(ctl, ${ATTACHED}, 1);
    Atomics.notify(ctl, ${ATTACHED});
    loop();
  } else if (m.type === "detach") {
    instances.delete(m.id);
  }
}
function loop() {
  for (;;) {
    let g, spins = 0;
    while ((g = Atomics.load(ctl, ${GEN})) === gen) {
      if (++spins > ${SPIN}) { Atomics.wait(ctl, ${GEN}, gen); spins = 0; }
    }
    gen = g;
    const tag = (g & 0x7ffff) << 12;
    for (;;) {
      const v = Atomics.load(ctl, ${CLAIM});
      if ((v & ~0xfff) !== tag || (v & 0xfff) === 0) break;
      if (Atomics.compareExchange(ctl, ${CLAIM}, v, v - 1) !== v) continue;
      const t = (v & 0xfff) - 1;
      const fn = Atomics.load(ctl, ${FN});
      const n = Atomics.load(ctl, ${TILES});
      if (fn < 0) {
        if (Atomics.add(ctl, ${DONE}, 1) + 1 === n) Atomics.notify(ctl, ${DONE});
        if (fn === ${STOP}) close();
        return;
      }
      try {
        const ex = instances.get(Atomics.load(ctl, ${RT}));
        const na = Atomics.load(ctl, ${NARGS});
        ex[names[fn]].apply(null, args.subarray(t * ${MAX_ARGS}, t * ${MAX_ARGS} + na));
      } catch (e) {
        Atomics.store(ctl, ${ERR}, t + 1);
      }
      if (Atomics.add(ctl, ${DONE}, 1) + 1 === n) Atomics.notify(ctl, ${DONE});
    }
  }
}
`;

const NODE_PRELUDE = `const { parentPort } = require("node:worker_threads");
const post = (m) => parentPort.postMessage(m);
const close = () => process.exit(0);
parentPort.on("message", handle);`;

const WEB_PRELUDE = `const post = (m) => self.postMessage(m);
const close = () => self.close();
self.onmessage = (e) => handle(e.data);`;

interface AnyWorker {
  postMessage(m: unknown): void;
  terminate(): unknown;
}

const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

/** Whether this thread may block in `Atomics.wait` (not on a browser page's main thread). */
function canBlock(ctl: Int32Array): boolean {
  try {
    Atomics.wait(ctl, 15, 1, 0); // word 15 is always 0: returns "not-equal" at once where allowed
    return true;
  } catch {
    return false;
  }
}

export class ThreadPool {
  /** Threads in all: the workers plus the calling thread. */
  readonly threads: number;
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly blocking: boolean;
  private gen = 0;
  private alive = true;
  /** Calls spread over the threads, and the tiles of them that workers ran (not the caller). */
  splitCalls = 0;
  workerTiles = 0;
  private attachedIds = new Set<number>();
  private constructor(
    private readonly workers: AnyWorker[],
    control: SharedArrayBuffer,
  ) {
    this.threads = workers.length + 1;
    this.ctl = new Int32Array(control);
    this.args = new Float64Array(control, ARGS_AT);
    this.blocking = canBlock(this.ctl);
  }

  /**
   * Start `threads − 1` workers running the tile loop for the kernels in `names`. Rejects (after
   * terminating those that started) if one fails to start within `timeoutMs`.
   */
  static async create(threads: number, names: readonly string[], timeoutMs = 20000): Promise<ThreadPool> {
    const control = new SharedArrayBuffer(ARGS_AT + MAX_TILES * MAX_ARGS * 8);
    const workers: AnyWorker[] = [];
    const ready: Promise<void>[] = [];
    try {
      for (let i = 0; i < threads - 1; i++) {
        const { worker, started } = await startWorker();
        workers.push(worker);
        ready.push(started);
        worker.postMessage({ type: "init", control, names });
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`a worker did not start within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([Promise.all(ready), timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    return new ThreadPool(workers, control);
  }

  get running(): boolean {
    return this.alive;
  }

  /**
   * Give every worker an instance of `module` on `memory` (runtime `id`) with its scratch at
   * `scratch + i·scratchBytes`. Returns false (the runtime then runs on one thread) if one failed.
   */
  attach(id: number, module: WebAssembly.Module, memory: WebAssembly.Memory, scratch: number, scratchBytes: number) {
    if (!this.alive) return false;
    Atomics.store(this.ctl, ATTACHED, 0);
    Atomics.store(this.ctl, ERR, 0);
    this.workers.forEach((w, i) => {
      w.postMessage({ type: "attach", id, module, memory, scratch: scratch + i * scratchBytes });
    });
    this.publish(YIELD, 0, 0, this.workers.length);
    this.waitFor(ATTACHED, this.workers.length);
    this.waitFor(DONE, this.workers.length);
    const ok = Atomics.load(this.ctl, ERR) === 0;
    if (ok) this.attachedIds.add(id);
    return ok;
  }

  /** Forget runtime `id` in the workers (read at their next attach). */
  detach(id: number): void {
    if (!this.attachedIds.delete(id) || !this.alive) return;
    for (const w of this.workers) w.postMessage({ type: "detach", id });
  }

  has(id: number): boolean {
    return this.alive && this.attachedIds.has(id);
  }

  /**
   * Run `tiles.length` calls of kernel `fn` (an index into the pool's names) of runtime `id`,
   * spread over all threads; `call` is the calling thread's instance of the kernel. Returns when
   * all are done; a tile that trapped in any thread is a `WasmError` after all finished.
   */
  run(id: number, fn: number, name: string, tiles: readonly (readonly number[])[], call: (...a: number[]) => unknown) {
    const n = tiles.length;
    let nargs = 0;
    for (let t = 0; t < n; t++) {
      const a = tiles[t];
      nargs = a.length;
      this.args.set(a, t * MAX_ARGS);
    }
    Atomics.store(this.ctl, ERR, 0);
    this.publish(fn, id, nargs, n);
    // the calling thread takes tiles like any worker
    const tag = (this.gen & 0x7ffff) << 12;
    let own = 0;
    for (;;) {
      const v = Atomics.load(this.ctl, CLAIM);
      if ((v & ~0xfff) !== tag || (v & 0xfff) === 0) break;
      if (Atomics.compareExchange(this.ctl, CLAIM, v, v - 1) !== v) continue;
      const t = (v & 0xfff) - 1;
      own++;
      try {
        call(...tiles[t]);
      } catch {
        Atomics.store(this.ctl, ERR, t + 1);
      }
      Atomics.add(this.ctl, DONE, 1);
    }
    this.waitFor(DONE, n);
    this.splitCalls++;
    this.workerTiles += n - own;
    const err = Atomics.load(this.ctl, ERR);
    if (err !== 0) throw new WasmError(`kernel ${name} failed in tile ${err - 1} of ${n} (a wasm trap)`);
  }

  /** Stop the workers. Runtimes that used them go on with one thread. */
  terminate(): void {
    if (!this.alive) return;
    this.alive = false;
    this.publish(STOP, 0, 0, this.workers.length);
    for (const w of this.workers) w.terminate();
    this.attachedIds.clear();
  }

  private publish(fn: number, id: number, nargs: number, tiles: number): void {
    if (tiles > MAX_TILES) throw new WasmError(`thread pool: ${tiles} tiles exceed ${MAX_TILES}`);
    this.gen = (this.gen + 1) & 0x7ffff;
    const c = this.ctl;
    Atomics.store(c, FN, fn);
    Atomics.store(c, RT, id);
    Atomics.store(c, NARGS, nargs);
    Atomics.store(c, TILES, tiles);
    Atomics.store(c, DONE, 0);
    Atomics.store(c, CLAIM, (this.gen << 12) | tiles);
    Atomics.store(c, GEN, this.gen);
    Atomics.notify(c, GEN);
  }

  /** Wait until control word `i` reaches `target`: spin, then block (or keep spinning where blocking is not allowed). */
  private waitFor(i: number, target: number): void {
    const c = this.ctl;
    let spins = 0;
    for (;;) {
      const v = Atomics.load(c, i);
      if (v >= target) return;
      if (++spins > SPIN && this.blocking) Atomics.wait(c, i, v, 50);
    }
  }
}

async function startWorker(): Promise<{ worker: AnyWorker; started: Promise<void> }> {
  if (isNode) {
    const wt = (await import(
      /* @vite-ignore */ "node:worker_threads" as string
    )) as typeof import("node:worker_threads");
    const worker = new wt.Worker(`${NODE_PRELUDE}\n${WORKER_BODY}`, { eval: true });
    worker.unref(); // idle workers never keep the process alive
    const started = new Promise<void>((res, rej) => {
      worker.once("message", (m: { type?: string }) => (m?.type === "ready" ? res() : rej(new Error("bad hello"))));
      worker.once("error", rej);
      worker.once("exit", (code) => rej(new Error(`worker exited with code ${code}`)));
    });
    return { worker, started };
  }
  if (typeof Worker === "undefined" || typeof Blob === "undefined" || typeof URL?.createObjectURL !== "function") {
    throw new Error("this environment has no Worker constructor");
  }
  const url = URL.createObjectURL(new Blob([`${WEB_PRELUDE}\n${WORKER_BODY}`], { type: "text/javascript" }));
  const worker = new Worker(url);
  const started = new Promise<void>((res, rej) => {
    worker.onmessage = (e: MessageEvent) => {
      URL.revokeObjectURL(url);
      if (e.data?.type === "ready") res();
      else rej(new Error("bad hello"));
    };
    worker.onerror = (e: ErrorEvent) => {
      URL.revokeObjectURL(url);
      rej(new Error(e.message || "worker script error"));
    };
  });
  return { worker, started };
}

/**
 * Why threads cannot be used here, or undefined when they can: `SharedArrayBuffer` and `Atomics`
 * must exist, shared wasm memory must be constructible, and a browser context must be
 * `crossOriginIsolated` (COOP `same-origin` + COEP `require-corp`/`credentialless` headers).
 */
export function threadsUnavailableReason(): string | undefined {
  if (typeof SharedArrayBuffer === "undefined" || typeof Atomics === "undefined") {
    const g = globalThis as { crossOriginIsolated?: boolean };
    if (!isNode && g.crossOriginIsolated === false) {
      return "the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)";
    }
    return "SharedArrayBuffer/Atomics are not available";
  }
  if (!isNode && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    return "the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)";
  }
  try {
    const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true } as WebAssembly.MemoryDescriptor);
    if (!(m.buffer instanceof SharedArrayBuffer)) return "this engine cannot share wasm memory";
  } catch {
    return "this engine cannot share wasm memory";
  }
  return undefined;
}

/** Usable cores: `os.availableParallelism()` in Node, `navigator.hardwareConcurrency` elsewhere. */
export async function usableCores(): Promise<number> {
  if (isNode) {
    const os = (await import(/* @vite-ignore */ "node:os" as string)) as typeof import("node:os");
    return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  }
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return typeof n === "number" && n > 0 ? n : 1;
}
