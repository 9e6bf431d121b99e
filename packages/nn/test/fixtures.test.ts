// Every case of this package's kinds in ../shared/fixtures and in test/torch-cases (computed by
// PyTorch, test/torchgen/gen.py), on every backend, as the parity runner runs them: outputs within
// the case tolerance, greedy ids exact, error cases rejected with a typed error.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WasmformerError } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { describe, expect, it } from "vitest";
import { kinds, setParityRuntime } from "../src/parity.js";
import { trainStepModels } from "../src/train-step.js";
import { backends, closeTo, FIXTURES, fixtureNames, TORCH_CASES } from "./helpers.js";

const KINDS = Object.keys(kinds);
/** A `train_step` case runs here only for a model nn itself registers (gpt2 and vit cases run in llm and vit). */
const runsHere = (root: string, name: string): boolean => {
  if (!name.startsWith("train_step-")) return true;
  const json = JSON.parse(readFileSync(join(root, name, "case.json"), "utf8"));
  return trainStepModels().includes(json.config?.model);
};
const cases = fixtureNames(KINDS).filter((n) => runsHere(FIXTURES, n));
const torchCases = fixtureNames(KINDS, TORCH_CASES);
const bks = await backends();

const all = [...cases.map((n) => ({ root: FIXTURES, n })), ...torchCases.map((n) => ({ root: TORCH_CASES, n }))];

describe.each(bks)("fixtures on $name", ({ make }) => {
  it.each(all)("$n", async ({ root, n: name }) => {
    setParityRuntime(make);
    const dir = join(root, name);
    const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
    const c = caseFromFolder(dir);
    const run = kinds[json.kind](c);
    if (json.expect_error) {
      const err = await run.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WasmformerError);
      return;
    }
    const result = await run;
    if (!("tensors" in result)) throw new Error("tensor kind returned JSON");
    const io = await c.io();
    const names = io.names().filter((n) => n.startsWith("expected."));
    expect(names.length).toBeGreaterThan(0);
    for (const full of names) {
      const short = full.slice(9);
      const tol = json.tolerance.per_tensor?.[full] ?? json.tolerance.per_tensor?.[short] ?? json.tolerance;
      const e = io.get(full);
      const a = result.tensors[short];
      expect(a, `${short} produced`).toBeDefined();
      expect(closeTo(a, e.data, e.shape, tol.atol, tol.rtol), short).toBeUndefined();
    }
  });
});

it("test/torch-cases has cases of every kind of this package", () => {
  const seen = new Set(torchCases.map((c) => c.slice(0, c.indexOf("-"))));
  // train_step's own cases are generated against a float64 reference in train-step-generated.test.ts
  for (const k of KINDS.filter((k) => k !== "train_step")) expect(seen.has(k), k).toBe(true);
});

it("fixture folder has cases of every kind of this package (when present)", () => {
  if (cases.length === 0) return;
  const seen = new Set(cases.map((c) => c.slice(0, c.lastIndexOf("-"))));
  for (const k of KINDS) expect(seen.has(k), k).toBe(true);
});
