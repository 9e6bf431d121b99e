/** Allocation of the 2-D outputs of the Keras helpers, with a typed error instead of a RangeError. */
import { InputError, WASM32_MAX_BYTES } from "@wasmformer/core";

const gib = (bytes: number) => `${(bytes / 2 ** 30).toPrecision(3)} GiB`;

/**
 * A zero-filled `[rows, cols]` f32 or i32 array. When it cannot exist — more than the 4 GiB a
 * tensor can take in wasm32 memory, or more than the engine will allocate — throws `InputError`
 * starting with `what` (the argument that asked for it) and giving the size asked for.
 */
export function allocMatrix(dtype: "f32" | "i32", rows: number, cols: number, what: string): Float32Array | Int32Array {
  const bytes = rows * cols * 4;
  const asked = `${what}: a [${rows}, ${cols}] matrix needs ${gib(bytes)}`;
  if (bytes > WASM32_MAX_BYTES) throw new InputError(`${asked}, more than the 4 GiB a tensor can hold`);
  try {
    return dtype === "f32" ? new Float32Array(rows * cols) : new Int32Array(rows * cols);
  } catch (e) {
    if (e instanceof RangeError) throw new InputError(`${asked}, which could not be allocated (${e.message})`);
    throw e;
  }
}
