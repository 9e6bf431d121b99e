/**
 * Helpers shared by the packages' tests: seeded random numbers and tensors, the shared fixture
 * cases as `ParityCase`s (core's `caseFromFolder`, as the parity runner builds them), and the
 * FORMAT.md §4 tolerance check.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tensor } from "@wasmformer/core";
import { caseFromFolder, type ParityCase } from "@wasmformer/core/parity";
import { type Prng, prng } from "./prng.js";

export { mulberry32, normalGen, type Prng, prng } from "./prng.js";

// ---------------------------------------------------------------------------------------------
// random tensors

export interface TensorRng extends Prng {
  /** An f32 tensor uniform in [-scale, scale). */
  tensor(shape: readonly number[], scale?: number): Tensor<"f32">;
}

/** A `Prng` that also makes random f32 tensors. */
export function rng(seed: number): TensorRng {
  const r = prng(seed);
  return {
    ...r,
    tensor(shape, scale = 1) {
      let n = 1;
      for (const d of shape) n *= d;
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (r.next() * 2 - 1) * scale;
      return new Tensor(a, shape, "f32");
    },
  };
}

/** An f32 tensor uniform in [-scale, scale) from a fresh generator of `seed`. */
export const randomTensor = (shape: readonly number[], seed = 1, scale = 1): Tensor<"f32"> =>
  rng(seed).tensor(shape, scale);

// ---------------------------------------------------------------------------------------------
// fixture cases

/** The shared conformance cases (`WASMFORMER_FIXTURES` overrides the location). */
export const FIXTURES = process.env.WASMFORMER_FIXTURES ?? "/work/shared/fixtures";
export const haveFixtures = existsSync(join(FIXTURES, "FORMAT.md"));

/** Names of the case folders under `root` (sorted), optionally only those of the given kinds. */
export function fixtureNames(kinds?: readonly string[], root = FIXTURES): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => existsSync(join(root, d, "case.json")))
    .filter((d) => !kinds || kinds.includes(JSON.parse(readFileSync(join(root, d, "case.json"), "utf8")).kind))
    .sort();
}

/** The `ParityCase` of a shared case by folder name; `override` replaces files (by role) or edits case.json. */
export function fixtureCase(
  name: string,
  override: { files?: Record<string, Uint8Array>; json?: (j: Record<string, unknown>) => Record<string, unknown> } = {},
): ParityCase {
  return caseFromFolder(join(FIXTURES, name), override);
}

// ---------------------------------------------------------------------------------------------
// tolerance (FORMAT.md §4: |a − e| ≤ atol + rtol·|e|)

/**
 * Largest excess of |a − e| over atol + rtol·|e| (≤ 0: all within tolerance; NaN counts as +∞),
 * after a shape check (throws on a mismatch).
 */
export function worst(actual: Tensor, expected: Tensor, atol: number, rtol: number): number {
  if (actual.shape.join() !== expected.shape.join())
    throw new Error(`shape [${actual.shape}] vs expected [${expected.shape}]`);
  let w = actual.size === 0 ? 0 : Number.NEGATIVE_INFINITY;
  const a = actual.data;
  const e = expected.data;
  for (let i = 0; i < e.length; i++) {
    const v = Math.abs(a[i]! - e[i]!) - (atol + rtol * Math.abs(e[i]!));
    if (!(v <= w)) w = Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  }
  return w;
}

/** The first violation of |a − e| ≤ atol + rtol·|e| or of the shape, as a message (undefined: all close). */
export function closeTo(
  actual: Tensor,
  expected: ArrayLike<number>,
  shape: readonly number[],
  atol = 1e-4,
  rtol = 1e-3,
): string | undefined {
  if (actual.shape.length !== shape.length || actual.shape.some((d, i) => d !== shape[i])) {
    return `shape [${actual.shape}] != [${shape}]`;
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual.data[i];
    const e = expected[i];
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) return `element ${i}: ${a} vs ${e}`;
  }
  return undefined;
}
