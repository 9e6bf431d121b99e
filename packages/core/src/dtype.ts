/** Element types of a `Tensor` and their storage. */
export type DType = "f32" | "i32" | "u8" | "bool";

export type DataFor<D extends DType> = D extends "f32" ? Float32Array : D extends "i32" ? Int32Array : Uint8Array;
export type TypedData = Float32Array | Int32Array | Uint8Array;

export const DTYPES: readonly DType[] = ["f32", "i32", "u8", "bool"];

export function bytesPerElement(d: DType): number {
  return d === "f32" || d === "i32" ? 4 : 1;
}

export function allocData(d: DType, n: number): TypedData {
  return d === "f32" ? new Float32Array(n) : d === "i32" ? new Int32Array(n) : new Uint8Array(n);
}

export function dtypeOf(data: TypedData): DType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Int32Array) return "i32";
  return "u8";
}
