// The shared conformance cases of kind `bert` (FORMAT.md §6.16) on every backend, and the same
// cases with their checkpoint rewritten in the layouts a loader must also accept.
import { readdirSync } from "node:fs";
import {
  ConfigError,
  InputError,
  init,
  SafetensorsError,
  Tensor,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
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

describe.runIf(haveFixtures)("shared bert cases made invalid in one place: the library's typed error", () => {
  const name = "bert-pad_two_segments";
  const run = (over: Parameters<typeof fixtureCase>[1]) =>
    kinds.bert!(fixtureCase(name, over)).then(
      () => {
        throw new Error("expected an error");
      },
      (e: Error) => e,
    );
  const cfg = (edit: Record<string, unknown>) => ({
    json: (j: Record<string, unknown>) => ({ ...j, config: { ...(j.config as object), ...edit } }),
  });
  /** the case's io with one input replaced */
  const io = async (input: string, edit: (a: Int32Array) => void) => {
    const f = await fixtureCase(name).io();
    const out: Record<string, Tensor> = {};
    for (const n of f.names()) out[n] = f.get(n);
    const t = out[`input.${input}`]!;
    const data = (t.data as Int32Array).slice();
    edit(data);
    out[`input.${input}`] = new Tensor(data, t.shape, "i32");
    return { files: { io: writeSafetensors(out, undefined, { intDtype: "I64" }) } };
  };
  const model = async (edit: (m: Record<string, Tensor>) => void) => {
    const f = await fixtureCase(name).model();
    const out: Record<string, Tensor> = {};
    for (const n of f.names()) out[n] = f.get(n);
    edit(out);
    return { files: { model: writeSafetensors(out) } };
  };

  it("config: heads not dividing hidden_size, relative positions, unknown activation", async () => {
    await init({ backend: "auto" });
    for (const [edit, re] of [
      [{ num_attention_heads: 5 }, /num_attention_heads: 5 heads do not divide hidden_size 32/],
      [{ position_embedding_type: "relative_key_query" }, /position_embedding_type/],
      [{ hidden_act: "quick_gelu" }, /hidden_act/],
    ] as const) {
      const e = await run(cfg(edit));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toMatch(re);
    }
  });

  it("weights: a missing tensor and a mis-shaped one, by name", async () => {
    const e = await run(await model((m) => delete m["bert.encoder.layer.1.attention.self.value.weight"]));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('missing "bert.encoder.layer.1.attention.self.value.weight" [32, 32]');
    const e2 = await run(cfg({ intermediate_size: 65 }));
    expect(e2).toBeInstanceOf(WeightsError);
    expect(e2.message).toContain(
      '"bert.encoder.layer.0.intermediate.dense.weight" has shape [64, 32], the config needs [65, 32]',
    );
  });

  it("inputs: an id beyond the vocabulary, a type id beyond type_vocab_size, a mask value 2", async () => {
    const cases = [
      [await io("input_ids", (a) => (a[11] = 100)), /input_ids\[1, 2\] = 100 is outside \[0, 100\)/],
      [await io("token_type_ids", (a) => (a[3] = 2)), /token_type_ids\[0, 3\] = 2 is outside \[0, 2\)/],
      [await io("attention_mask", (a) => (a[0] = 2)), /attention_mask\[0, 0\] = 2/],
    ] as const;
    for (const [over, re] of cases) {
      const e = await run(over);
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toMatch(re);
    }
  });

  it("a truncated model file: SafetensorsError", async () => {
    const bytes = await fixtureCase(name).file("model");
    const e = await run({ files: { model: bytes.slice(0, bytes.length - 100) } });
    expect(e).toBeInstanceOf(SafetensorsError);
  });
});
