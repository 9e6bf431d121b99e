// Helpers shared by the benchmark scripts: deterministic inputs, medians, CPU time, loading wasm
// builds side by side, and interleaved timing. Not a test.
import { readFileSync } from "node:fs";

/** n floats in [-1, 1) from xorshift32 (deterministic for a seed). */
export function rand(n, seed) {
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** CPU time of this process (user + system), seconds. */
export function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * One runtime per wasm file, for A/B runs: a file whose name contains "relaxed" is loaded as the
 * relaxed-SIMD build, any other as the plain-SIMD build.
 */
export async function runtimesOf(core, files) {
  const rts = [];
  for (const f of files) {
    const bytes = readFileSync(f);
    const relaxed = f.includes("relaxed");
    await core.init(relaxed ? { backend: "wasm-relaxed", wasmRelaxed: bytes } : { backend: "wasm-simd", wasm: bytes });
    rts.push(core.createRuntime());
  }
  return rts;
}

/**
 * Time each function in CPU seconds per call: 100 ms of warm-up each, then `rounds` rounds of
 * about 40 ms batches, the order rotating from round to round. Returns the median of each.
 */
export function timeInterleaved(fns, rounds) {
  const runs = fns.map((fn) => {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 100) {
      fn();
      n++;
    }
    return { fn, reps: Math.max(1, Math.round((40 * n) / (performance.now() - t0))), times: [] };
  });
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[(i + r) % runs.length];
      const s = cpuSeconds();
      for (let q = 0; q < run.reps; q++) run.fn();
      run.times.push((cpuSeconds() - s) / run.reps);
    }
  }
  return runs.map((run) => median(run.times));
}
