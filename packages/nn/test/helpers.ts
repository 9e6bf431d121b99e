/**
 * Test helpers: both backends, this package's PyTorch-computed cases; the shared ones (seeded
 * random tensors, tolerance checks, fixture folders) come from @wasmformer/test-utils.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BackendName,
  createRefRuntime,
  type Runtime,
  relaxedSimdSupported,
  simdSupported,
} from "@wasmformer/core";
// core's own wasm wrapper (its source, as the rest of core in these tests), to instantiate both builds
import { wasmImports, wrapInstance } from "../../core/src/backend/wasm.js";
import { missingKernels } from "../src/util.js";

export { closeTo, FIXTURES, fixtureNames, rng } from "@wasmformer/test-utils";

/** PyTorch-computed cases of this package (test/torchgen/gen.py). */
export const TORCH_CASES = join(__dirname, "torch-cases");

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
