/**
 * The shared llama conformance cases (FORMAT.md §6.15), run through this package's `llama` kind on
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
import { type LlamaSpec, makeTinyLlama, refLlama, refLlamaGreedy } from "./tiny-llama.js";

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

// ---------------------------------------------------------------------------------------------
// generated valid cases beyond the shared ones: other configurations the format allows

describe("generated llama cases (f64 reference) through the parity kind", () => {
  const variants: { name: string; spec: LlamaSpec; prompts: number[][]; n: number }[] = [
    {
      name: "MQA, head_dim 6 ≠ hidden/heads, attention_bias, tied, legacy inv_freq, batch 3",
      spec: { D: 20, H: 4, KV: 1, headDim: 6, attentionBias: true, oBias: true, tied: true, legacy: true, seed: 41 },
      prompts: [
        [1, 2, 3, 4],
        [9, 8, 7, 6],
        [40, 2, 40, 2],
      ],
      n: 6,
    },
    {
      name: "prompt of one token, llama3 rope scaling",
      spec: {
        seed: 42,
        theta: 100,
        ropeScaling: {
          rope_type: "llama3",
          factor: 4,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 16,
        },
      },
      prompts: [[17]],
      n: 8,
    },
    {
      name: "no new tokens (Qwen2)",
      spec: { seed: 43, modelType: "qwen2", attentionBias: true },
      prompts: [[3, 4]],
      n: 0,
    },
    {
      name: "prompt + the N − 1 tokens fed back = max_position_embeddings",
      spec: { seed: 44, P: 12, mlpBias: true },
      prompts: [[5, 6, 7, 8, 9, 10]],
      n: 7,
    },
  ];
  for (const v of variants) {
    test(v.name, async () => {
      await init({ backend: "auto" });
      const tiny = makeTinyLlama(v.spec);
      const V = tiny.config.vocab_size as number;
      const B = v.prompts.length;
      const T = v.prompts[0].length;
      const logits = new Float32Array(B * T * V);
      const gen = new Int32Array(B * v.n);
      const step = new Float32Array(B * v.n * V);
      v.prompts.forEach((p, b) => {
        refLlama(tiny, p).forEach((row, t) => {
          logits.set(row, (b * T + t) * V);
        });
        const g = refLlamaGreedy(tiny, p, v.n);
        expect(g.margin).toBeGreaterThan(1e-3);
        gen.set(g.ids, b * v.n);
        const all = refLlama(tiny, [...p, ...g.ids].slice(0, Math.max(T, T + v.n - 1)));
        for (let s = 0; s < v.n; s++) step.set(all[T - 1 + s], (b * v.n + s) * V);
      });
      const dir = mkdtempSync(join(tmpdir(), "llama-case-"));
      try {
        const json = {
          format_version: 1,
          kind: "llama",
          name: "llama-generated",
          config: tiny.config,
          params: { max_new_tokens: v.n },
          files: { model: "model.safetensors", io: "io.safetensors", config: "config.json" },
          tolerance: { atol: 1e-4, rtol: 1e-3 },
        };
        writeFileSync(join(dir, "case.json"), JSON.stringify(json));
        writeFileSync(join(dir, "config.json"), JSON.stringify(tiny.config));
        writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
        const io = {
          "input.input_ids": new Tensor(Int32Array.from(v.prompts.flat()), [B, T], "i32"),
          "expected.logits": new Tensor(logits, [B, T, V], "f32"),
          "expected.generated_ids": new Tensor(gen, [B, v.n], "i32"),
          "expected.step_logits": new Tensor(step, [B, v.n, V], "f32"),
        };
        writeFileSync(join(dir, "io.safetensors"), writeSafetensors(io, { format: "pt" }, { intDtype: "I64" }));
        const c = caseFromFolder(dir);
        const r = await kinds.llama(c);
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
