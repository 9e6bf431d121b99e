/**
 * The wasm backend: the AssemblyScript module's exports are the `Kernels` (they take the same
 * pointer ABI), plus `heapBase` for the JS-side allocator.
 */
import { WasmError } from "../errors.js";
import { WasmHeap } from "../heap.js";
import { ABI_VERSION, BACKWARD_KERNEL_NAMES, KERNEL_NAMES, type Kernels, OPTIM_KERNEL_NAMES } from "../kernels.js";

export interface WasmExports extends Kernels {
  memory: WebAssembly.Memory;
  heapBase(): number;
  simdFlavor(): number;
}

/** Imports the module needs: only `env.abort` (AssemblyScript's assertion hook). */
export function wasmImports(): WebAssembly.Imports {
  return {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new WasmError(`wasm kernel aborted at line ${line}:${col}`);
      },
      seed: () => Date.now(),
    },
  };
}

export function wrapInstance(instance: WebAssembly.Instance): { kernels: Kernels; heap: WasmHeap; relaxed: boolean } {
  const ex = instance.exports as unknown as WasmExports;
  if (typeof ex.abiVersion !== "function" || !(ex.memory instanceof WebAssembly.Memory)) {
    throw new WasmError("not a @wasmformer/core kernel module (no abiVersion/memory export)");
  }
  const v = ex.abiVersion();
  if (v !== ABI_VERSION) {
    throw new WasmError(
      `kernel module ABI version ${v} does not match this JS (expects ${ABI_VERSION}); rebuild or reinstall`,
    );
  }
  const missing = [...KERNEL_NAMES, ...BACKWARD_KERNEL_NAMES, ...OPTIM_KERNEL_NAMES].filter(
    (n) => typeof ex[n] !== "function",
  );
  if (missing.length) throw new WasmError(`kernel module lacks exports: ${missing.join(", ")}; rebuild it`);
  const heap = new WasmHeap(ex.memory, ex.heapBase() >>> 0);
  // the exports are frozen: a copy with the kernels written in TypeScript over them
  const kernels: Kernels = {
    ...ex,
    attentionHeads(slices) {
      for (const a of slices) ex.attention(...a);
    },
    attentionBackwardHeads(slices) {
      for (const a of slices) ex.attentionBackward(...a);
    },
  };
  return { kernels, heap, relaxed: ex.simdFlavor() === 1 };
}

/** Smallest module using a v128 op: validates where wasm SIMD is available (tfjs `flags_wasm.ts`). */
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11,
]);
/** Smallest module using `f32x4.relaxed_madd`. */
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 19, 1, 17, 0, 65, 1, 253, 15, 65, 2, 253, 15, 65,
  3, 253, 15, 253, 133, 2, 11,
]);

export function simdSupported(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

export function relaxedSimdSupported(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}
