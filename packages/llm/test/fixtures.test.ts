/**
 * The shared gpt2 conformance cases (FORMAT.md §6.12), run through this package's `gpt2` kind on
 * both backends, compared like the parity runner: f32 by |a − e| ≤ atol + rtol·|e|, ids exactly.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { init, type ParityCase, parseSafetensors, type Tensor, WasmformerError } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { kinds } from "../src/parity.js";

const ROOT = "/work/shared/fixtures";
const cases = existsSync(ROOT)
  ? readdirSync(ROOT)
      .filter((d) => d.startsWith("gpt2-"))
      .sort()
  : [];

function makeCase(dir: string): ParityCase {
  const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
  const files = json.files ?? {};
  const file = async (r: string) => new Uint8Array(await readFile(join(dir, files[r] ?? r)));
  const c: ParityCase = {
    dir,
    name: json.name,
    kind: json.kind,
    json,
    config: json.config ?? {},
    params: json.params ?? {},
    expectError: json.expect_error,
    file,
    io: async () => parseSafetensors(await file("io")),
    async inputs() {
      const f = await c.io();
      return new Map(
        f
          .names()
          .filter((n) => n.startsWith("input."))
          .map((n) => [n.slice(6), f.get(n)]),
      );
    },
    model: async () => parseSafetensors(await file("model")),
  };
  return c;
}

function compare(name: string, a: Tensor, e: Tensor, atol: number, rtol: number) {
  expect(a.shape, name).toEqual(e.shape);
  if (e.dtype === "i32") {
    expect(Array.from(a.data), name).toEqual(Array.from(e.data));
    return;
  }
  let worst = 0;
  for (let i = 0; i < e.size; i++)
    worst = Math.max(worst, Math.abs(a.data[i] - e.data[i]) - (atol + rtol * Math.abs(e.data[i])));
  expect(worst, `${name}: max excess over tolerance`).toBeLessThanOrEqual(0);
}

for (const backend of ["ref", "auto"] as const) {
  describe.runIf(cases.length > 0)(`shared gpt2 cases (${backend})`, () => {
    for (const name of cases) {
      test(name, async () => {
        await init({ backend });
        const c = makeCase(join(ROOT, name));
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
