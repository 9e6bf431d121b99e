// Shared by the thread benchmarks (core, vit, llm): time two engines — the same work on 1 thread
// (the single-thread build) and on N threads (the threaded build + pool) — in one process,
// interleaved (1, N, 1, N, …) so that both see the same machine load; medians after warm-up.
import { loadavg } from "node:os";

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * `engines`: [{ name, run }] (run may be async). Returns the median ms of each, after `warm`
 * untimed rounds, over `rounds` interleaved rounds.
 */
export async function interleaved(engines, { rounds = 10, warm = 2 } = {}) {
  const times = engines.map(() => []);
  for (let r = 0; r < warm + rounds; r++) {
    for (let e = 0; e < engines.length; e++) {
      const t0 = performance.now();
      await engines[e].run();
      const dt = performance.now() - t0;
      if (r >= warm) times[e].push(dt);
    }
  }
  return times.map(median);
}

export function loadNote() {
  const [a1, a5] = loadavg();
  return `load average ${a1.toFixed(2)} (1 min), ${a5.toFixed(2)} (5 min)`;
}

/** A markdown row: case, 1-thread ms, N-thread ms, speed-up. */
export function row(name, ms) {
  const [one, ...rest] = ms;
  return `| ${name} | ${ms.map((m) => m.toFixed(2)).join(" | ")} | ${rest.map((m) => `${(one / m).toFixed(2)}×`).join(" | ")} |`;
}
