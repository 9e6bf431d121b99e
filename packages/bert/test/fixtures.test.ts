// The shared conformance cases of kind `bert` (FORMAT.md §6.16) on every backend, and the same
// cases with their checkpoint rewritten in the layouts a loader must also accept.
import { readdirSync } from "node:fs";
import { init, Tensor, writeSafetensors } from "@wasmformer/core";
import { FIXTURES, fixtureCase, haveFixtures, worst } from "@wasmformer/test-utils";
import { describe, expect, it } from "vitest";
import { kinds } from "../src/parity.js";

const cases = haveFixtures
  ? readdirSync(FIXTURES)
      .filter((d) => d.startsWith("bert-"))
      .sort()
  : [];

/** Run a case (optionally with another model file) and check every expected tensor. */
async function check(name: string, model?: Uint8Array) {
  const c = fixtureCase(name, model ? { files: { model } } : {});
  const r = await kinds.bert!(c);
  if (!("tensors" in r)) throw new Error("expected tensors");
  const io = await c.io();
  const tol = c.json.tolerance as { atol: number; rtol: number };
  const expected = io.names().filter((n) => n.startsWith("expected."));
  expect(expected.length).toBeGreaterThanOrEqual(3);
  for (const n of expected) {
    const got = r.tensors[n.slice("expected.".length)];
    expect(got, n).toBeDefined();
    expect(worst(got!, io.get(n), tol.atol, tol.rtol), n).toBeLessThanOrEqual(0);
  }
}

describe.runIf(haveFixtures).each(["ref", "wasm-simd", "auto"] as const)(
  "shared bert cases (%s backend)",
  (backend) => {
    it.each(cases)("%s", async (name) => {
      await init({ backend });
      await check(name);
    });
  },
);

describe.runIf(haveFixtures)("shared bert cases, checkpoint rewritten", () => {
  it.each(cases)("%s: no prefix, gamma/beta, position_ids buffer, cls.* heads", async (name) => {
    await init({ backend: "auto" });
    const file = await fixtureCase(name).model();
    const out: Record<string, Tensor> = {};
    for (const n of file.names()) {
      const t = file.get(n);
      out[
        n
          .replace(/^bert\./, "")
          .replace(/LayerNorm\.weight$/, "LayerNorm.gamma")
          .replace(/LayerNorm\.bias$/, "LayerNorm.beta")
      ] = t;
    }
    const [, D] = out["embeddings.word_embeddings.weight"]!.shape as [number, number];
    const P = out["embeddings.position_embeddings.weight"]!.shape[0]!;
    out["embeddings.position_ids"] = Tensor.zeros([1, P], "i32");
    out["cls.seq_relationship.weight"] = Tensor.zeros([2, D]);
    await check(name, writeSafetensors(out, undefined, { intDtype: "I64" }));
  });
});
