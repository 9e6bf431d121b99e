/**
 * The shared `train_step` case with `model: "gpt2"` (FORMAT.md §6.17) through nn's `runTrainStep`
 * with this package's registered builder, on both backends, compared as the parity runner does
 * (FORMAT §4, `tolerance.per_tensor` for every gradient and parameter, the case tolerance else).
 */
import { join } from "node:path";
import { init, type Tensor } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { runTrainStep } from "@wasmformer/nn/parity";
import { FIXTURES, fixtureNames } from "@wasmformer/test-utils";
import { describe, expect, test } from "vitest";
// the parity runner's comparison (FORMAT §4)
import { compareTensor } from "../../../tools/parity/src/compare.mjs";
import "../src/parity.js";

const cases = fixtureNames(["train_step"]).filter((n) => {
  const c = caseFromFolder(join(FIXTURES, n));
  return c.config.model === "gpt2";
});

for (const backend of ["ref", "auto"] as const) {
  describe.runIf(cases.length > 0)(`train_step gpt2 cases (${backend})`, () => {
    for (const name of cases) {
      test(name, async () => {
        await init({ backend });
        const c = caseFromFolder(join(FIXTURES, name));
        const out = await runTrainStep(c);
        if (!("tensors" in out)) throw new Error("expected tensors");
        const io = await c.io();
        const tol = c.json.tolerance as {
          atol: number;
          rtol: number;
          per_tensor?: Record<string, { atol: number; rtol: number }>;
        };
        const expected = io.names().filter((n) => n.startsWith("expected."));
        expect(expected.length).toBeGreaterThan(3);
        for (const full of expected) {
          const short = full.slice(9);
          const t = tol.per_tensor?.[full] ?? tol;
          const a: Tensor | undefined = out.tensors[short];
          expect(a, short).toBeDefined();
          const e = io.get(full);
          const r = compareTensor(short, a!, e, e.dtype === "f32" ? "F32" : "I64", t);
          expect(r.ok, r.reason).toBe(true);
        }
      });
    }
  });
}
