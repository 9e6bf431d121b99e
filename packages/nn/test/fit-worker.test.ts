// `fit` inside a worker_threads Worker gives exactly the losses (every step's loss, learning rate
// and gradient norm; the epoch logs with validation) and the final parameters of the same run in
// the main thread, for the same seed (issue 14 §4). worker/fit-job.mjs runs in a plain Node process
// on the built dist packages: the job in its main thread, then in a Worker, the very same code.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const JOB = fileURLToPath(new URL("./worker/fit-job.mjs", import.meta.url));
interface JobResult {
  steps: [number, number, number][];
  history: Record<string, number>[];
  params: number[][];
}

function mainAndWorker(job: { kind: "mlp" | "lstm"; backend: "wasm-simd" | "ref"; seed: number }) {
  const out = execFileSync(process.execPath, [JOB, JSON.stringify(job)], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out) as { main: JobResult; worker: JobResult };
}

describe("fit in a worker_threads Worker = fit in the main thread", () => {
  for (const job of [
    { kind: "mlp", backend: "wasm-simd", seed: 3 },
    { kind: "lstm", backend: "wasm-simd", seed: 5 },
    { kind: "mlp", backend: "ref", seed: 7 },
  ] as const) {
    it(`${job.kind} on ${job.backend}, seed ${job.seed}: identical step losses, epoch logs and parameters`, () => {
      const { main, worker } = mainAndWorker(job);
      expect(main.steps.length).toBeGreaterThan(10);
      expect(main.history.length).toBe(4);
      expect(main.history.at(-1)!.valLoss).toBeLessThan(main.history[0]!.valLoss!); // it does train
      expect(worker.steps).toEqual(main.steps);
      expect(worker.history).toEqual(main.history);
      expect(worker.params).toEqual(main.params);
    }, 60_000);
  }
});
