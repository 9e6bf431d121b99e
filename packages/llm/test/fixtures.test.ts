/**
 * The shared gpt2 conformance cases (FORMAT.md §6.12), run through this package's `gpt2` kind on
 * both backends, compared like the parity runner: f32 by |a − e| ≤ atol + rtol·|e|, ids exactly.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { init, Tensor, WasmformerError, writeSafetensors } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { FIXTURES, fixtureNames, worst } from "@wasmformer/test-utils";
import { describe, expect, test } from "vitest";
import { kinds } from "../src/parity.js";
import { makeTiny, refForward, refGreedy, type TinySpec } from "./tiny-gpt2.js";

const cases = fixtureNames().filter((d) => d.startsWith("gpt2-"));

function compare(name: string, a: Tensor, e: Tensor, atol: number, rtol: number) {
  expect(a.shape, name).toEqual(e.shape);
  if (e.dtype === "i32") {
    expect(Array.from(a.data), name).toEqual(Array.from(e.data));
    return;
  }
  expect(worst(a, e, atol, rtol), `${name}: max excess over tolerance`).toBeLessThanOrEqual(0);
}

for (const backend of ["ref", "auto"] as const) {
  describe.runIf(cases.length > 0)(`shared gpt2 cases (${backend})`, () => {
    for (const name of cases) {
      test(name, async () => {
        await init({ backend });
        const c = caseFromFolder(join(FIXTURES, name));
        if (c.expectError) {
          const err = await kinds.gpt2(c).then(
            () => undefined,
            (e) => e,
          );
          expect(err).toBeInstanceOf(WasmformerError);
          expect(err.code).toBe(c.expectError);
          if (name.includes("token_id_out_of_range"))
            expect(err.message).toMatch(/token id 96 at input_ids\[\d+, \d+\]/);
          if (name.includes("wrong_shape_weight")) {
            expect(err.message).toContain("transformer.h.0.attn.c_attn.weight");
            expect(err.message).toContain("[144, 48]");
            expect(err.message).toContain("[48, 144]");
          }
          return;
        }
        const r = await kinds.gpt2(c);
        if (!("tensors" in r)) throw new Error("expected tensors");
        const io = await c.io();
        const tol = c.json.tolerance as { atol: number; rtol: number };
        for (const full of io.names().filter((n) => n.startsWith("expected."))) {
          const short = full.slice(9);
          compare(short, r.tensors[short], io.get(full), tol.atol, tol.rtol);
        }
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// generated valid cases beyond the shared ones: other layouts and sizes the format allows

describe("generated gpt2 cases (f64 reference)", () => {
  const variants: { name: string; spec: TinySpec; prompts: number[][]; n: number }[] = [
    {
      name: "original names, legacy F32 attn.bias, stored lm_head, batch 3",
      spec: { prefix: false, legacy: true, lmHead: "tied-copy", seed: 31 },
      prompts: [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
      ],
      n: 5,
    },
    { name: "prompt of one token", spec: { seed: 32 }, prompts: [[17]], n: 8 },
    { name: "no new tokens", spec: { seed: 33 }, prompts: [[3, 4]], n: 0 },
    { name: "prompt + new tokens = n_positions", spec: { seed: 34, P: 12 }, prompts: [[5, 6, 7, 8, 9, 10]], n: 6 },
  ];
  for (const v of variants) {
    test(v.name, async () => {
      await init({ backend: "auto" });
      const tiny = makeTiny(v.spec);
      if (v.spec.legacy) {
        // the F32 1.0/0.0 form of the causal buffer
        for (const [k, t] of tiny.tensors)
          if (k.endsWith("attn.bias") && t.dtype === "bool")
            tiny.tensors.set(k, new Tensor(Float32Array.from(t.data), t.shape, "f32"));
      }
      const V = tiny.config.vocab_size as number;
      const B = v.prompts.length;
      const T = v.prompts[0].length;
      const logits = new Float32Array(B * T * V);
      const gen = new Int32Array(B * v.n);
      const step = new Float32Array(B * v.n * V);
      v.prompts.forEach((p, b) => {
        refForward(tiny, p).logits.forEach((row, t) => {
          logits.set(row, (b * T + t) * V);
        });
        const g = refGreedy(tiny, p, v.n);
        expect(g.margin).toBeGreaterThan(1e-3);
        gen.set(g.ids, b * v.n);
        const seq = [...p, ...g.ids];
        const all = refForward(tiny, seq.slice(0, Math.max(T, T + v.n - 1))).logits;
        for (let s = 0; s < v.n; s++) step.set(all[T - 1 + s], (b * v.n + s) * V);
      });
      const dir = mkdtempSync(join(tmpdir(), "gpt2-case-"));
      try {
        const json = {
          format_version: 1,
          kind: "gpt2",
          name: "gpt2-generated",
          config: tiny.config,
          params: { max_new_tokens: v.n },
          files: { model: "model.safetensors", io: "io.safetensors" },
          tolerance: { atol: 1e-4, rtol: 1e-3 },
        };
        writeFileSync(join(dir, "case.json"), JSON.stringify(json));
        writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
        const io = {
          "input.input_ids": new Tensor(Int32Array.from(v.prompts.flat()), [B, T], "i32"),
          "expected.logits": new Tensor(logits, [B, T, V], "f32"),
          "expected.generated_ids": new Tensor(gen, [B, v.n], "i32"),
          "expected.step_logits": new Tensor(step, [B, v.n, V], "f32"),
        };
        writeFileSync(join(dir, "io.safetensors"), writeSafetensors(io, { format: "pt" }, { intDtype: "I64" }));
        const c = caseFromFolder(dir);
        const r = await kinds.gpt2(c);
        if (!("tensors" in r)) throw new Error("expected tensors");
        const f = await c.io();
        for (const full of f.names().filter((n) => n.startsWith("expected.")))
          compare(full, r.tensors[full.slice(9)], f.get(full), 1e-4, 1e-3);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
