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
 * untimed rounds, over `rounds` interleaved rounds, and the median CPU ms (`process.cpuUsage`: all
 * threads of the process, so with N threads it is the work of all of them).
 */
export async function interleaved(engines, { rounds = 10, warm = 2 } = {}) {
  const times = engines.map(() => []);
  const cpus = engines.map(() => []);
  for (let r = 0; r < warm + rounds; r++) {
    for (let e = 0; e < engines.length; e++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await engines[e].run();
      const dt = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (r >= warm) {
        times[e].push(dt);
        cpus[e].push((c.user + c.system) / 1000);
      }
    }
  }
  return { wall: times.map(median), cpu: cpus.map(median) };
}

export function loadNote() {
  const [a1, a5] = loadavg();
  return `load average ${a1.toFixed(2)} (1 min), ${a5.toFixed(2)} (5 min)`;
}

/** Header of the tables `row` prints, for thread counts 1 and `counts`. */
export function header(first, counts) {
  const ts = [1, ...counts];
  return [
    `| ${first} | ${ts.map((t) => `${t} thr ms`).join(" | ")} | ${counts.map((t) => `${t} thr speed-up`).join(" | ")} | ${ts.map((t) => `CPU ms ${t} thr`).join(" | ")} | ${counts.map((t) => `${t} thr work ratio`).join(" | ")} |`,
    `|---|${ts.map(() => "---:").join("|")}|${counts.map(() => "---:").join("|")}|${ts.map(() => "---:").join("|")}|${counts.map(() => "---:").join("|")}|`,
  ].join("\n");
}

/**
 * A markdown row: case, wall ms per thread count, measured speed-ups, CPU ms of all threads, and
 * the work ratio CPU(1)/CPU(N): the speed-up N threads would give on N idle cores is at most
 * N × that ratio (on a loaded machine the wall speed-up is lower: the threads wait for a core).
 */
export function row(name, { wall, cpu }) {
  const [one, ...rest] = wall;
  const [c1, ...crest] = cpu;
  return `| ${name} | ${wall.map((m) => m.toFixed(2)).join(" | ")} | ${rest.map((m) => `${(one / m).toFixed(2)}×`).join(" | ")} | ${cpu.map((m) => m.toFixed(2)).join(" | ")} | ${crest.map((m) => (c1 / m).toFixed(2)).join(" | ")} |`;
}
