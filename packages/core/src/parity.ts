/**
 * The contract between the parity runner (`tools/parity`, `pnpm parity <folder>`) and the packages
 * that implement case kinds (`../shared/fixtures/FORMAT.md`). Each package exports, from its
 * `./parity` entry, `kinds: KindRegistry`; the runner loads the case, calls the kind's function and
 * compares what it returns with the case's expected values.
 *
 * A kind function must do all file reading through the `ParityCase` accessors (inside the call), so
 * that a malformed file surfaces as the library's own typed error and an error case can pass.
 */
import { ConfigError, InputError, ShapeError } from "./errors.js";
import { conv2dPatch, gelu, geluTanh, layerNorm, matmul, silu, softmax } from "./ops.js";
import { parseSafetensors } from "./safetensors.js";
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

// ---------------------------------------------------------------------------------------------
// a case folder as a ParityCase (Node only)

/** Node's `fs`, looked up only when called (this module must stay loadable in browsers). */
function nodeFs(): typeof import("node:fs") {
  const fs = globalThis.process?.getBuiltinModule?.("node:fs");
  if (!fs) throw new InputError("caseFromFolder needs Node.js (node:fs), >= 20.16");
  return fs;
}

/**
 * The `ParityCase` of a case folder, as the parity runner hands it to a kind (Node only): files
 * are read when asked for (once each) and `io.safetensors` / the model are parsed once.
 * @param opts.json the parsed `case.json` (read from the folder if absent), or an edit of it
 * @param opts.files bytes that replace files of the folder, by role or file name
 * @example
 * ```ts
 * const c = caseFromFolder("/data/fixtures/vit-img32_p8");
 * const r = await kinds.vit(c);
 * ```
 */
export function caseFromFolder(
  dir: string,
  opts: {
    json?: Record<string, unknown> | ((json: Record<string, unknown>) => Record<string, unknown>);
    files?: Record<string, Uint8Array>;
  } = {},
): ParityCase {
  const fs = nodeFs();
  const path = (name: string) => `${dir.replace(/[\\/]+$/, "")}/${name}`;
  const read = () => JSON.parse(fs.readFileSync(path("case.json"), "utf8")) as Record<string, unknown>;
  const json = typeof opts.json === "function" ? opts.json(structuredClone(read())) : (opts.json ?? read());
  const names = (json.files ?? {}) as Record<string, string>;
  const cache = new Map<string, Promise<Uint8Array>>();
  const file = (roleOrName: string): Promise<Uint8Array> => {
    const given = opts.files?.[roleOrName];
    if (given) return Promise.resolve(given);
    const name = names[roleOrName] ?? roleOrName;
    let p = cache.get(name);
    if (!p) {
      p = fs.promises.readFile(path(name)).then((b) => new Uint8Array(b)); // a copy: its own ArrayBuffer
      cache.set(name, p);
    }
    return p;
  };
  let io: Promise<TensorFile> | undefined;
  let model: Promise<TensorFile> | undefined;
  const c: ParityCase = {
    dir,
    name: json.name as string,
    kind: json.kind as string,
    json,
    config: (json.config ?? {}) as Record<string, unknown>,
    params: (json.params ?? {}) as Record<string, unknown>,
    expectError: json.expect_error as string | undefined,
    file,
    io() {
      io ??= file("io").then((b) => parseSafetensors(b));
      return io;
    },
    async inputs() {
      const f = await c.io();
      const m = new Map<string, Tensor>();
      for (const n of f.names()) if (n.startsWith("input.")) m.set(n.slice(6), f.get(n));
      return m;
    },
    model() {
      model ??= file("model").then((b) => parseSafetensors(b));
      return model;
    },
  };
  return c;
}

// ---------------------------------------------------------------------------------------------
// the `ops` kind (FORMAT.md §6.14): primitive kernels, no model file

function input(inputs: Map<string, Tensor>, name: string): Tensor {
  const t = inputs.get(name);
  if (!t) throw new InputError(`ops case: missing input tensor "input.${name}"`);
  return t;
}

function intField(cfg: Record<string, unknown>, name: string): number {
  const v = cfg[name];
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new ConfigError(`expected an integer, got ${JSON.stringify(v)}`, name);
  return v;
}

async function runOps(c: ParityCase): Promise<KindResult> {
  const op = c.config.op;
  const inputs = await c.inputs();
  const x = () => input(inputs, "x");
  switch (op) {
    case "matmul": {
      const a = input(inputs, "a");
      const b = input(inputs, "b");
      if (a.ndim !== 2 || b.ndim !== 2)
        throw new ShapeError(`matmul: a and b must be 2-d, got [${a.shape}] and [${b.shape}]`);
      return { tensors: { out: matmul(a, b) } };
    }
    case "bmm": {
      const a = input(inputs, "a");
      const b = input(inputs, "b");
      if (a.ndim !== 3 || b.ndim !== 3 || a.shape[0] !== b.shape[0]) {
        throw new ShapeError(`bmm: a [B, M, K] and b [B, K, N] needed, got [${a.shape}] and [${b.shape}]`);
      }
      return { tensors: { out: matmul(a, b) } };
    }
    case "softmax": {
      const dim = c.config.dim ?? -1;
      if (typeof dim !== "number" || !Number.isInteger(dim)) throw new ConfigError(`expected an integer`, "dim");
      return { tensors: { out: softmax(x(), dim) } };
    }
    case "layer_norm": {
      const shape = c.config.normalized_shape;
      const t = x();
      if (!Array.isArray(shape) || shape.length !== 1 || shape[0] !== t.shape[t.ndim - 1]) {
        throw new ConfigError(
          `must be [D] with D = the last dimension of x (${t.shape[t.ndim - 1]}), got ${JSON.stringify(shape)}`,
          "normalized_shape",
        );
      }
      const eps = c.config.eps ?? 1e-5;
      if (typeof eps !== "number" || !(eps >= 0)) throw new ConfigError(`expected a non-negative number`, "eps");
      return { tensors: { out: layerNorm(t, input(inputs, "weight"), input(inputs, "bias"), eps) } };
    }
    case "gelu":
      return { tensors: { out: gelu(x()) } };
    case "gelu_tanh":
      return { tensors: { out: geluTanh(x()) } };
    case "silu":
      return { tensors: { out: silu(x()) } };
    case "conv2d_patch": {
      const k = intField(c.config, "kernel_size");
      const stride = c.config.stride ?? k;
      const padding = c.config.padding ?? 0;
      if (stride !== k)
        throw new ConfigError(
          `conv2d_patch needs stride = kernel_size (${k}), got ${JSON.stringify(stride)}`,
          "stride",
        );
      if (padding !== 0)
        throw new ConfigError(`conv2d_patch supports padding 0 only, got ${JSON.stringify(padding)}`, "padding");
      return { tensors: { out: conv2dPatch(x(), input(inputs, "weight"), inputs.get("bias"), k) } };
    }
    default:
      throw new ConfigError(`unknown op ${JSON.stringify(op)}`, "op");
  }
}

/** The kinds this package implements. */
export const kinds: KindRegistry = { ops: runOps };
