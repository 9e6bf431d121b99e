/**
 * The contract between the parity runner (`tools/parity`, `pnpm parity <folder>`) and the packages
 * that implement case kinds (`../shared/fixtures/FORMAT.md`). Each package exports, from its
 * `./parity` entry, `kinds: KindRegistry`; the runner loads the case, calls the kind's function and
 * compares what it returns with the case's expected values.
 *
 * A kind function must do all file reading through the `ParityCase` accessors (inside the call), so
 * that a malformed file surfaces as the library's own typed error and an error case can pass.
 */
import type { Tensor } from "./tensor.js";

/** A set of named tensors read from a file (safetensors). */
export interface TensorFile {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor;
  readonly metadata?: Record<string, string> | undefined;
}

export interface ParityCase {
  /** Absolute path of the case folder. */
  readonly dir: string;
  readonly name: string;
  readonly kind: string;
  /** Parsed case.json. */
  readonly json: Record<string, unknown>;
  readonly config: Record<string, unknown>;
  readonly params: Record<string, unknown>;
  /** True for error cases (`expect_error` present). */
  readonly expectError: string | undefined;
  /** Raw bytes of a file of the case, by role (`model`, `io`, `config`) or file name. */
  file(roleOrName: string): Promise<Uint8Array>;
  /** The parsed `io.safetensors` (all tensors, inputs and expected). */
  io(): Promise<TensorFile>;
  /** Inputs from `io.safetensors` by short name (`input.x` → `x`). Absent optional inputs are missing. */
  inputs(): Promise<Map<string, Tensor>>;
  /** The parsed `model.safetensors`. */
  model(): Promise<TensorFile>;
}

/** What a kind returns: tensors named like the expected ones without `expected.`, or a JSON object. */
export type KindResult = { tensors: Record<string, Tensor> } | { json: Record<string, unknown> };

export type KindRunner = (c: ParityCase) => Promise<KindResult>;
export type KindRegistry = Record<string, KindRunner>;
