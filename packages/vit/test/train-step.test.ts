// The shared `train_step` case of the ViT (FORMAT.md §6.17) through nn's `runTrainStep`, with the
// `vit` builder that ../src/parity.ts registers; reference and wasm backends.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { init } from "@wasmformer/core";
import { runTrainStep } from "@wasmformer/nn/parity";
import { FIXTURES, fixtureCase, worst } from "@wasmformer/test-utils";
import { describe, expect, it } from "vitest";
import "../src/parity.js";

const name = "train_step-vit_adamw";

describe.runIf(existsSync(join(FIXTURES, name))).each(["ref", "wasm-simd"] as const)("%s backend", (backend) => {
  it(`${name}: losses, first gradients and parameters after K steps within the case's per-tensor tolerances`, async () => {
    await init({ backend });
    const c = fixtureCase(name);
    const r = await runTrainStep(c);
    if (!("tensors" in r)) throw new Error("expected tensors");
    const io = await c.io();
    const tol = c.json.tolerance as {
      atol: number;
      rtol: number;
      per_tensor?: Record<string, { atol: number; rtol: number }>;
    };
    const expected = io.names().filter((n) => n.startsWith("expected."));
    expect(expected.length).toBeGreaterThan(40);
    for (const n of expected) {
      const t = tol.per_tensor?.[n] ?? tol;
      const got = r.tensors[n.slice("expected.".length)];
      expect(got, n).toBeDefined();
      expect(worst(got!, io.get(n), t.atol, t.rtol), n).toBeLessThanOrEqual(0);
    }
  });
});
