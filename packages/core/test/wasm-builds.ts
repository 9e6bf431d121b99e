// Both wasm builds side by side (plain SIMD and relaxed SIMD), each a runtime with its own memory.
// vitest runs this project with --experimental-wasm-relaxed-simd, so both must load.
import { createRuntime, init, type Runtime } from "../src/runtime.js";

export async function wasmBuilds(): Promise<Runtime[]> {
  const out: Runtime[] = [];
  for (const backend of ["wasm-simd", "wasm-relaxed"] as const) {
    await init({ backend });
    out.push(createRuntime());
  }
  return out;
}
