// Every case of this package's kinds in ../shared/fixtures, on every backend, as the parity runner
// runs them: outputs within the case tolerance, error cases rejected with a typed error.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WasmformerError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { kinds, setParityRuntime } from "../src/parity.js";
import { backends, closeTo, FIXTURES, fixtureCases, makeCase } from "./helpers.js";

const KINDS = Object.keys(kinds);
const cases = fixtureCases(KINDS);
const bks = await backends();

describe.each(bks)("fixtures on $name", ({ make }) => {
  it.each(cases)("%s", async (name) => {
    setParityRuntime(make);
    const dir = join(FIXTURES, name);
    const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
    const c = makeCase(dir);
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

it("fixture folder has cases of every kind of this package (when present)", () => {
  if (cases.length === 0) return;
  const seen = new Set(cases.map((c) => c.slice(0, c.lastIndexOf("-"))));
  for (const k of KINDS) expect(seen.has(k), k).toBe(true);
});
