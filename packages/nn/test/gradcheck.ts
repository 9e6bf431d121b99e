/**
 * Gradient checking for the layers' backward passes: the loss is `Σ c ⊙ y` over every output (c
 * seeded random), the module's analytic gradients (its `backward` with `dy = c`, f32 kernels) are
 * compared with central finite differences of a float64 reference forward (test/oracle.ts), for
 * every parameter tensor and every differentiated input (a seeded sample of entries per tensor).
 */
import type { Runtime } from "@wasmformer/core";
import type { TrainParam } from "../src/optim.js";
import { rng } from "./helpers.js";

export type F64 = Record<string, Float64Array>;

export interface GradCase {
  rt: Runtime;
  /** the module's parameters (names = state-dict names = keys of `weights`) */
  params: TrainParam[];
  /** the state dict the module was loaded from */
  weights: Record<string, Float32Array>;
  /** the inputs that get a gradient, by name */
  inputs: Record<string, Float32Array>;
  /** float64 forward: every output, flattened and concatenated */
  ref: (w: F64, x: F64) => number[];
  /** the module's training forward (same flattening) and its backward from `dy`: the inputs' gradients */
  run: (dy: Float32Array) => { out: ArrayLike<number>; dInputs: Record<string, ArrayLike<number>> };
}

export interface GradResult {
  /** the analytic gradients, by parameter name and `input.<name>` */
  grads: Record<string, Float32Array>;
  /** first mismatches found (empty = pass) */
  failures: string[];
}

const f64 = (r: Record<string, Float32Array>): F64 =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Float64Array.from(v)]));

/**
 * Check `c`. Tolerance per entry: `|g − fd| ≤ atol·max|fd| + rtol·|fd|` with the maximum over the
 * tensor's sampled entries (f32 gradients carry rounding relative to the tensor's scale).
 */
export function gradCheck(
  c: GradCase,
  seed: number,
  o: { perTensor?: number; rtol?: number; atol?: number } = {},
): GradResult {
  const r = rng(seed);
  const perTensor = o.perTensor ?? 40;
  const rtol = o.rtol ?? 1e-3;
  const atol = o.atol ?? 2e-5;
  const w = f64(c.weights);
  const x = f64(c.inputs);
  const y = c.ref(w, x);
  const coef = Float32Array.from(y, () => r.uniform(-1, 1));
  const loss = () => {
    const v = c.ref(w, x);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += coef[i]! * v[i]!;
    return s;
  };
  for (const p of c.params) c.rt.heap.f32(p.grad, p.size).fill(0);
  const { out, dInputs } = c.run(coef);
  const failures: string[] = [];
  if (out.length !== y.length) failures.push(`forward: ${out.length} outputs, reference ${y.length}`);
  for (let i = 0; i < y.length && failures.length < 3; i++) {
    if (!(Math.abs(out[i]! - y[i]!) <= 1e-4 + 1e-3 * Math.abs(y[i]!)))
      failures.push(`forward output ${i}: ${out[i]} vs reference ${y[i]}`);
  }
  const grads: Record<string, Float32Array> = {};
  const names = new Set(c.params.map((p) => p.name));
  for (const n of Object.keys(c.weights))
    if (!names.has(n)) failures.push(`weight ${n} is not among the module's parameters`);
  for (const p of c.params) grads[p.name] = c.rt.heap.f32(p.grad, p.size).slice();
  for (const [n, g] of Object.entries(dInputs)) grads[`input.${n}`] = Float32Array.from(g);
  const check = (what: string, vals: Float64Array, g: Float32Array | undefined) => {
    if (!g || g.length !== vals.length) {
      failures.push(`${what}: gradient of ${g?.length ?? "no"} entries for ${vals.length} values`);
      return;
    }
    // a seeded sample without repeats (every entry of a small tensor)
    const idx = [...vals.keys()];
    for (let i = idx.length - 1; i > 0; i--) {
      const j = r.int(0, i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    idx.length = Math.min(idx.length, perTensor);
    const h = 1e-5;
    const fds = idx.map((i) => {
      const v = vals[i]!;
      vals[i] = v + h;
      const up = loss();
      vals[i] = v - h;
      const down = loss();
      vals[i] = v;
      return (up - down) / (2 * h);
    });
    const scale = Math.max(1e-3, ...fds.map(Math.abs));
    idx.forEach((i, k) => {
      const fd = fds[k]!;
      if (!(Math.abs(g[i]! - fd) <= atol * scale + rtol * Math.abs(fd)) && failures.length < 8)
        failures.push(`${what}[${i}]: backward ${g[i]} vs finite difference ${fd}`);
    });
  };
  for (const [n, vals] of Object.entries(w)) check(n, vals, grads[n]);
  for (const [n, vals] of Object.entries(x)) check(`input.${n}`, vals, grads[`input.${n}`]);
  return { grads, failures };
}

/** The largest |a − b| relative to max|b| over two gradient sets (backend equality). */
export function maxRelDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  let worst = 0;
  for (const [n, gb] of Object.entries(b)) {
    const ga = a[n];
    if (!ga) return Number.POSITIVE_INFINITY;
    let m = 1e-6;
    for (const v of gb) m = Math.max(m, Math.abs(v));
    for (let i = 0; i < gb.length; i++) worst = Math.max(worst, Math.abs(ga[i]! - gb[i]!) / m);
  }
  return worst;
}
