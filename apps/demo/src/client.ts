/**
 * The page's handle on the compute worker: `compute.api` is the comlink proxy (typed by the
 * worker's `ComputeApi`). `cancel()` terminates the worker (aborting whatever it computes) and the
 * next call starts a fresh one, as squoosh does; models loaded in the old worker are gone.
 */
import { type Remote, releaseProxy, wrap } from "comlink";
import type { ComputeApi } from "./compute.worker.js";

export class ComputeClient {
  private worker: Worker | undefined;
  private remote: Remote<ComputeApi> | undefined;
  /** Incremented by every restart: pages compare it to know whether their loaded model survived. */
  epoch = 0;
  private listeners: ((reason: "cancel" | "error") => void)[] = [];
  private pending = new Set<(e: Error) => void>();

  get api(): Remote<ComputeApi> {
    if (!this.remote) {
      const worker = new Worker(new URL("./compute.worker.ts", import.meta.url), { type: "module", name: "compute" });
      // a worker that fails to load (or dies) never answers: fail what is pending, start afresh next time
      worker.addEventListener("error", (e) => {
        e.preventDefault();
        this.fail(new Error(`the compute worker failed: ${e.message || "it could not be loaded"}`), "error");
      });
      this.worker = worker;
      this.remote = wrap<ComputeApi>(worker);
    }
    return this.remote;
  }

  /**
   * Run `f` against the worker; the promise rejects with an `AbortError` when `cancel()` is called
   * meanwhile (a terminated worker never answers).
   */
  run<T>(f: (api: Remote<ComputeApi>) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = (e: Error) => reject(e);
      this.pending.add(abort);
      f(this.api).then(
        (v) => {
          this.pending.delete(abort);
          resolve(v);
        },
        (e) => {
          this.pending.delete(abort);
          reject(e);
        },
      );
    });
  }

  /** Abort everything in flight: terminate the worker (lazily restarted on next use). */
  cancel(): void {
    this.fail(Object.assign(new Error("cancelled: the worker was stopped"), { name: "AbortError" }), "cancel");
  }

  private fail(err: Error, reason: "cancel" | "error"): void {
    if (!this.worker) return;
    this.remote?.[releaseProxy]();
    this.worker.terminate();
    this.worker = undefined;
    this.remote = undefined;
    this.epoch++;
    for (const abort of this.pending) abort(err);
    this.pending.clear();
    for (const f of this.listeners) f(reason);
  }

  /** Called after each cancel or worker failure (pages reset their "model loaded" state). */
  onRestart(f: (reason: "cancel" | "error") => void): void {
    this.listeners.push(f);
  }
}

export const compute = new ComputeClient();
