/**
 * Test helpers: a `ParityCase` over a fixture folder (as the parity runner builds it), tolerance
 * checks, deterministic random tensors, and both backends.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BackendName,
  createRefRuntime,
  parseSafetensors,
  type Runtime,
  relaxedSimdSupported,
  simdSupported,
  Tensor,
} from "@wasmformer/core";
import type { ParityCase, TensorFile } from "@wasmformer/core/parity";
// core's own wasm wrapper (its source, as the rest of core in these tests), to instantiate both builds
import { wasmImports, wrapInstance } from "../../core/src/backend/wasm.js";
import { missingKernels } from "../src/util.js";

export const FIXTURES = join(__dirname, "../../../../shared/fixtures");

/** PyTorch-computed cases of this package (test/torchgen/gen.py). */
export const TORCH_CASES = join(__dirname, "torch-cases");

export function fixtureCases(kinds: readonly string[], root = FIXTURES): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => existsSync(join(root, d, "case.json")))
    .filter((d) => kinds.includes(JSON.parse(readFileSync(join(root, d, "case.json"), "utf8")).kind))
    .sort();
}

export function makeCase(dir: string): ParityCase {
  const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
  const files = json.files ?? {};
  let io: TensorFile | undefined;
  let model: TensorFile | undefined;
  const file = async (role: string) => new Uint8Array(readFileSync(join(dir, files[role] ?? role)));
  const c: ParityCase = {
    dir,
    name: json.name,
    kind: json.kind,
    json,
    config: json.config ?? {},
    params: json.params ?? {},
    expectError: json.expect_error,
    file,
    async io() {
      io ??= parseSafetensors(await file("io"));
      return io;
    },
    async inputs() {
      const f = await c.io();
      const m = new Map<string, Tensor>();
      for (const n of f.names()) if (n.startsWith("input.")) m.set(n.slice(6), f.get(n));
      return m;
    },
    async model() {
      model ??= parseSafetensors(await file("model"));
      return model;
    },
  };
  return c;
}

/** Largest violation of |a − e| ≤ atol + rtol·|e| (0 = all within), and the shapes must match. */
export function closeTo(
  actual: Tensor,
  expected: ArrayLike<number> & { length: number },
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

/** Deterministic uniform random numbers in [lo, hi) (mulberry32). */
export function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform(lo: number, hi: number) {
      return lo + (hi - lo) * next();
    },
    tensor(shape: readonly number[], scale = 1): Tensor<"f32"> {
      let n = 1;
      for (const d of shape) n *= d;
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (next() * 2 - 1) * scale;
      return new Tensor(a, shape, "f32");
    },
    int(n: number) {
      return Math.floor(next() * n);
    },
  };
}

/**
 * The backends every test runs on: the reference backend, and each wasm build (plain SIMD and,
 * where the engine validates it, relaxed SIMD) that exports every kernel this package needs. Each
 * `make()` instantiates its own module with its own memory, so the builds can be tested side by side.
 */
export async function backends(): Promise<{ name: string; make: () => Runtime }[]> {
  const list: { name: string; make: () => Runtime }[] = [{ name: "ref", make: createRefRuntime }];
  const builds: [BackendName, string, boolean][] = [
    ["wasm-simd", "core.wasm", simdSupported()],
    ["wasm-relaxed", "core-relaxed.wasm", relaxedSimdSupported()],
  ];
  for (const [name, file, supported] of builds) {
    const path = join(__dirname, "../../core/build", file);
    if (!supported || !existsSync(path)) continue;
    const module = new WebAssembly.Module(readFileSync(path));
    const make = (): Runtime => {
      const { kernels, heap } = wrapInstance(new WebAssembly.Instance(module, wasmImports()));
      return { backend: name, heap, k: kernels };
    };
    if (missingKernels(make()).length === 0) list.push({ name, make });
  }
  return list;
}
