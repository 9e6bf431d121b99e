// Every case of this package's kinds in ../shared/fixtures and in test/torch-cases (computed by
// PyTorch, test/torchgen/gen.py), on every backend, as the parity runner runs them: outputs within
// the case tolerance, greedy ids exact, error cases rejected with a typed error.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WasmformerError } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { describe, expect, it } from "vitest";
import { kinds, setParityRuntime } from "../src/parity.js";
import { backends, closeTo, FIXTURES, fixtureNames, TORCH_CASES } from "./helpers.js";

const KINDS = Object.keys(kinds);
const cases = fixtureNames(KINDS);
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
      const tol = json.tolerance.per_tensor?.[short] ?? json.tolerance;
      const e = io.get(full);
      const a = result.tensors[short];
      expect(a, `${short} produced`).toBeDefined();
      expect(closeTo(a, e.data, e.shape, tol.atol, tol.rtol), short).toBeUndefined();
    }
  });
});

it("test/torch-cases has cases of every kind of this package", () => {
  const seen = new Set(torchCases.map((c) => c.slice(0, c.indexOf("-"))));
  for (const k of KINDS) expect(seen.has(k), k).toBe(true);
});

it("fixture folder has cases of every kind of this package (when present)", () => {
  if (cases.length === 0) return;
  const seen = new Set(cases.map((c) => c.slice(0, c.lastIndexOf("-"))));
  for (const k of KINDS) expect(seen.has(k), k).toBe(true);
});
