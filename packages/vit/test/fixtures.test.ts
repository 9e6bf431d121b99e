// The shared conformance cases of kind `vit` (FORMAT.md §6.11), on the reference backend and,
// when the kernels are built, on the wasm backend.
import { readdirSync } from "node:fs";
import { ConfigError, init, WasmformerError, WeightsError } from "@wasmformer/core";
import { FIXTURES, fixtureCase, haveFixtures, worst } from "@wasmformer/test-utils";
import { describe, expect, it } from "vitest";
import { kinds } from "../src/parity.js";

const cases = haveFixtures
  ? readdirSync(FIXTURES)
      .filter((d) => d.startsWith("vit-"))
      .sort()
  : [];

describe.runIf(haveFixtures).each(["ref", "wasm-simd", "auto"] as const)("shared vit cases (%s backend)", (backend) => {
  it.each(cases)("%s", async (name) => {
    await init({ backend });
    const c = fixtureCase(name);
    if (c.expectError) {
      const err = await kinds.vit!(c).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(WasmformerError);
      if (c.expectError === "config") expect(err).toBeInstanceOf(ConfigError);
      if (c.expectError === "weights") expect(err).toBeInstanceOf(WeightsError);
      if (name === "vit-err_missing_weight")
        expect(err.message).toContain("vit.encoder.layer.0.attention.attention.query.weight");
      if (name === "vit-err_heads_not_dividing") expect(err.message).toContain("num_attention_heads");
      return;
    }
    const r = await kinds.vit!(c);
    if (!("tensors" in r)) throw new Error("expected tensors");
    const io = await c.io();
    const tol = c.json.tolerance as { atol: number; rtol: number };
    const expectedNames = io.names().filter((n) => n.startsWith("expected."));
    expect(expectedNames.length).toBeGreaterThan(3);
    for (const n of expectedNames) {
      const short = n.slice("expected.".length);
      const got = r.tensors[short];
      expect(got, short).toBeDefined();
      expect(worst(got!, io.get(n), tol.atol, tol.rtol), short).toBeLessThanOrEqual(0);
    }
  });
});
