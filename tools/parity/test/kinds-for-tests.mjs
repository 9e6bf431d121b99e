// Kinds that misbehave on purpose, to check that the runner reports them as failures.
import { ShapeError, Tensor } from "@wasmformer/core";

export const kinds = {
  test_hang: async () => {
    for (;;) {} // never returns: the runner must time out and move on
  },
  test_crash: async () => {
    const o = undefined;
    return o.property; // a TypeError, not a typed error
  },
  test_typed_error: async () => {
    throw new ShapeError("test_typed_error: input x has the wrong shape");
  },
  test_wrong_output: async () => ({ tensors: { out: new Tensor(new Float32Array([1, 2.5]), [2]) } }),
};
