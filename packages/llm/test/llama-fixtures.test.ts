/**
 * The shared llama conformance cases (FORMAT.md §6.15), run through this package's `llama` kind on
 * both backends, compared like the parity runner: f32 by |a − e| ≤ atol + rtol·|e|, ids exactly.
 */
import { join } from "node:path";
import { init, type Tensor, WasmformerError } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { FIXTURES, fixtureNames, worst } from "@wasmformer/test-utils";
import { describe, expect, test } from "vitest";
import { kinds } from "../src/parity.js";

const cases = fixtureNames().filter((d) => d.startsWith("llama-"));

function compare(name: string, a: Tensor, e: Tensor, atol: number, rtol: number) {
  expect(a.shape, name).toEqual(e.shape);
  if (e.dtype === "i32") {
    expect(Array.from(a.data), name).toEqual(Array.from(e.data));
    return;
  }
  expect(worst(a, e, atol, rtol), `${name}: max excess over tolerance`).toBeLessThanOrEqual(0);
}

for (const backend of ["ref", "auto"] as const) {
  describe.runIf(cases.length > 0)(`shared llama cases (${backend})`, () => {
    for (const name of cases) {
      test(name, async () => {
        await init({ backend });
        const c = caseFromFolder(join(FIXTURES, name));
        if (c.expectError) {
          const err = await kinds.llama(c).then(
            () => undefined,
            (e) => e,
          );
          expect(err).toBeInstanceOf(WasmformerError);
          expect(err.code).toBe(c.expectError);
          return;
        }
        const r = await kinds.llama(c);
        if (!("tensors" in r)) throw new Error("expected tensors");
        const io = await c.io();
        const tol = c.json.tolerance as { atol: number; rtol: number };
        const expected = io.names().filter((n) => n.startsWith("expected."));
        expect(expected.length).toBeGreaterThan(0);
        for (const full of expected) {
          const short = full.slice(9);
          compare(short, r.tensors[short], io.get(full), tol.atol, tol.rtol);
        }
      });
    }
  });
}

/** Error cases made from a valid one by changing exactly one thing (FORMAT.md §4), as `expect_error` cases are. */
describe.runIf(cases.includes("llama-small_gqa_greedy10"))("llama error cases built from a valid case", () => {
  const dir = join(FIXTURES, "llama-small_gqa_greedy10");
  const withConfig = (patch: Record<string, unknown>, expectError: string) =>
    caseFromFolder(dir, {
      json: (j) => ({ ...j, expect_error: expectError, config: { ...(j.config as object), ...patch } }),
    });
  const errors: [string, Record<string, unknown>, string, RegExp][] = [
    ["unsupported rope_scaling", { rope_scaling: { rope_type: "yarn", factor: 4 } }, "config", /rope_scaling/],
    ["KV heads not dividing heads", { num_key_value_heads: 3 }, "config", /num_key_value_heads/],
    ["unknown model_type", { model_type: "falcon" }, "config", /model_type/],
    ["prompt beyond max_position_embeddings", { max_position_embeddings: 12 }, "input", /max_position_embeddings 12/],
    ["a config field that contradicts the weights", { intermediate_size: 100 }, "weights", /gate_proj\.weight/],
  ];
  for (const [what, patch, code, re] of errors) {
    test(what, async () => {
      await init({ backend: "ref" });
      const err = await kinds.llama(withConfig(patch, code)).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(WasmformerError);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(re);
    });
  }
});
