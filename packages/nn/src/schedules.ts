/**
 * Learning-rate schedules as multipliers of the base rate, step by step (PyTorch `LambdaLR` with the
 * Hugging Face `get_*_schedule_with_warmup` functions). Step `s` is the number of optimizer steps
 * already taken: the first update uses `factor(0)`, so a warm-up starts at 0 as in `transformers`.
 *
 * @example
 * ```ts
 * const sched = cosineWithWarmup(100, 1000);
 * opt.lr = baseLr * sched(opt.steps); opt.step();
 * ```
 */
import { InputError } from "@wasmformer/core";

/** A multiplier of the base learning rate for optimizer step `step` (0, 1, 2, …). */
export type Schedule = (step: number) => number;

function checkSteps(where: string, warmup: number, total?: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new InputError(`${where}: warmupSteps must be a non-negative integer, got ${warmup}`);
  }
  if (total !== undefined && (!Number.isInteger(total) || total < 0)) {
    throw new InputError(`${where}: totalSteps must be a non-negative integer, got ${total}`);
  }
}

/** Constant rate (1), after an optional linear warm-up from 0 over `warmupSteps`. */
export function constantSchedule(warmupSteps = 0): Schedule {
  checkSteps("constantSchedule", warmupSteps);
  return (s) => (s < warmupSteps ? s / Math.max(1, warmupSteps) : 1);
}

/** Linear warm-up from 0 to 1 over `warmupSteps`, then linear decay to 0 at `totalSteps`. */
export function linearWithWarmup(warmupSteps: number, totalSteps: number): Schedule {
  checkSteps("linearWithWarmup", warmupSteps, totalSteps);
  return (s) =>
    s < warmupSteps
      ? s / Math.max(1, warmupSteps)
      : Math.max(0, (totalSteps - s) / Math.max(1, totalSteps - warmupSteps));
}

/**
 * Linear warm-up, then a cosine from 1 down to 0 at `totalSteps` (`numCycles` 0.5: half a cosine
 * period, as `get_cosine_schedule_with_warmup`).
 */
export function cosineWithWarmup(warmupSteps: number, totalSteps: number, numCycles = 0.5): Schedule {
  checkSteps("cosineWithWarmup", warmupSteps, totalSteps);
  if (!(numCycles > 0)) throw new InputError(`cosineWithWarmup: numCycles must be > 0, got ${numCycles}`);
  return (s) => {
    if (s < warmupSteps) return s / Math.max(1, warmupSteps);
    const progress = (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}
