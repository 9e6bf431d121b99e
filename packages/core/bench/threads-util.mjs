// Shared by the thread benchmarks (core, vit, llm): time two engines — the same work on 1 thread
// (the single-thread build) and on N threads (the threaded build + pool) — in one process,
// interleaved (1, N, 1, N, …) so that both see the same machine load; medians after warm-up.
import { loadavg } from "node:os";

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * `engines`: [{ run }] (run may be async). Returns the median wall ms of each, after `warm`
 * untimed rounds, over `rounds` interleaved rounds. No CPU times: the pool's idle workers spin
 * ~0.5 ms after a call before they sleep, and the OS counts a thread that is still running at its
 * next tick, so a process's CPU time read right after a threaded call misses part of the workers'
 * work and the next run's reading gets it.
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
  return { wall: times.map(median) };
}

export function loadNote() {
  const [a1, a5] = loadavg();
  return `load average ${a1.toFixed(2)} (1 min), ${a5.toFixed(2)} (5 min)`;
}

/** Header of the tables `row` prints, for thread counts 1 and `counts`. */
export function header(first, counts) {
  const ts = [1, ...counts];
  return [
    `| ${first} | ${ts.map((t) => `${t} thr ms`).join(" | ")} | ${counts.map((t) => `${t} thr speed-up`).join(" | ")} |`,
    `|---|${ts.map(() => "---:").join("|")}|${counts.map(() => "---:").join("|")}|`,
  ].join("\n");
}

/** A markdown row: case, wall ms per thread count, measured speed-ups. */
export function row(name, { wall }) {
  const [one, ...rest] = wall;
  return `| ${name} | ${wall.map((m) => m.toFixed(2)).join(" | ")} | ${rest.map((m) => `${(one / m).toFixed(2)}×`).join(" | ")} |`;
}
