/**
 * Elementwise activations by PyTorch name, on a runtime (`unary` kernel). `gelu` is the exact
 * erf form (PyTorch's default); `gelu_tanh` (`gelu_new`) the tanh approximation.
 */
import { Act, type ActCode, ConfigError, type Runtime, type Tensor } from "@wasmformer/core";
import { expectShape, putF32, readF32, scratch, sharedRuntime } from "./util.js";

export type ActivationName = "relu" | "gelu" | "gelu_tanh" | "gelu_new" | "silu" | "tanh" | "sigmoid" | "identity";

const CODES: Record<ActivationName, ActCode> = {
  identity: Act.none,
  relu: Act.relu,
  gelu: Act.gelu,
  gelu_tanh: Act.geluTanh,
  gelu_new: Act.geluTanh,
  silu: Act.silu,
  tanh: Act.tanh,
  sigmoid: Act.sigmoid,
};

/** The kernel code of an activation name (a typed error for an unknown one). */
export function activationCode(name: string): ActCode {
  const c = (CODES as Record<string, ActCode>)[name];
  if (c === undefined) {
    throw new ConfigError(
      `unknown activation ${JSON.stringify(name)} (known: ${Object.keys(CODES).join(", ")})`,
      "activation",
    );
  }
  return c;
}

/** Apply an activation to an f32 tensor (a new tensor). */
export function activation(x: Tensor, name: ActivationName, rt?: Runtime): Tensor<"f32"> {
  const r = sharedRuntime(rt);
  const code = activationCode(name);
  return scratch(r, () => {
    const p = putF32(r, x, `${name} input`);
    r.k.unary(p, p, x.size, code);
    return readF32(r, p, x.shape);
  });
}

export const relu = (x: Tensor, rt?: Runtime) => activation(x, "relu", rt);
export const gelu = (x: Tensor, rt?: Runtime) => activation(x, "gelu", rt);
export const geluTanh = (x: Tensor, rt?: Runtime) => activation(x, "gelu_tanh", rt);
export const silu = (x: Tensor, rt?: Runtime) => activation(x, "silu", rt);
export const tanh = (x: Tensor, rt?: Runtime) => activation(x, "tanh", rt);
export const sigmoid = (x: Tensor, rt?: Runtime) => activation(x, "sigmoid", rt);

/** Activations whose derivative the backward kernel reads from the forward output, not the input. */
const FROM_OUTPUT = new Set<ActCode>([Act.tanh, Act.sigmoid]);

/** `act(x)` by kernel code on `rt` (a new tensor). */
export function applyActivation(rt: Runtime, x: Tensor, code: ActCode): Tensor<"f32"> {
  return scratch(rt, () => {
    const p = putF32(rt, x, "activation input");
    if (x.size) rt.k.unary(p, p, x.size, code);
    return readF32(rt, p, x.shape);
  });
}

/** `dy ⊙ act′(x)` by kernel code on `rt`, from the forward input `x` (relu′(0) = 0). */
export function activationGrad(rt: Runtime, dy: Tensor, x: Tensor, code: ActCode): Tensor<"f32"> {
  expectShape(dy, x.shape, "activation backward dy");
  return scratch(rt, () => {
    const px = putF32(rt, x, "activation input");
    const pg = putF32(rt, dy, "activation backward dy");
    if (x.size === 0 || code === Act.none) return readF32(rt, pg, x.shape);
    if (FROM_OUTPUT.has(code)) rt.k.unary(px, px, x.size, code);
    const dx = rt.heap.allocF32(x.size);
    rt.k.unaryBackward(dx, pg, px, x.size, code);
    return readF32(rt, dx, x.shape);
  });
}

/**
 * Gradient of `activation(x, name)`: `dx = dy ⊙ f′(x)` from the forward input `x` (relu′(0) = 0,
 * as PyTorch). For layers that keep their pre-activations in training mode.
 */
export function activationBackward(dy: Tensor, x: Tensor, name: ActivationName, rt?: Runtime): Tensor<"f32"> {
  return activationGrad(sharedRuntime(rt), dy, x, activationCode(name));
}
