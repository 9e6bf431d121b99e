// Test helpers: a ParityCase over a fixture folder (or over in-memory files), FORMAT.md §4 comparison.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ParityCase, parseSafetensors, type Tensor } from "@wasmformer/core";

export const FIXTURES = process.env.WASMFORMER_FIXTURES ?? "/work/shared/fixtures";
export const haveFixtures = existsSync(join(FIXTURES, "FORMAT.md"));

/** A ParityCase over a case folder; `override` replaces files (by role) or the case.json fields. */
export function fixtureCase(
  name: string,
  override: { files?: Record<string, Uint8Array>; json?: (j: Record<string, unknown>) => Record<string, unknown> } = {},
): ParityCase {
  const dir = join(FIXTURES, name);
  let json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8")) as Record<string, unknown>;
  if (override.json) json = override.json(structuredClone(json));
  const files = (json.files ?? {}) as Record<string, string>;
  const file = async (r: string) => override.files?.[r] ?? new Uint8Array(readFileSync(join(dir, files[r] ?? r)));
  const c: ParityCase = {
    dir,
    name: json.name as string,
    kind: json.kind as string,
    json,
    config: (json.config ?? {}) as Record<string, unknown>,
    params: (json.params ?? {}) as Record<string, unknown>,
    expectError: json.expect_error as string | undefined,
    file,
    io: async () => parseSafetensors(await file("io")),
    inputs: async () => {
      const f = await c.io();
      const m = new Map<string, Tensor>();
      for (const n of f.names()) if (n.startsWith("input.")) m.set(n.slice(6), f.get(n));
      return m;
    },
    model: async () => parseSafetensors(await file("model")),
  };
  return c;
}

/** Largest violation of |a − e| ≤ atol + rtol·|e| (≤ 0: within tolerance), after a shape check. */
export function worst(actual: Tensor, expected: Tensor, atol: number, rtol: number): number {
  if (actual.shape.join() !== expected.shape.join())
    throw new Error(`shape [${actual.shape}] vs expected [${expected.shape}]`);
  let w = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < actual.size; i++) {
    const e = expected.data[i]!;
    w = Math.max(w, Math.abs(actual.data[i]! - e) - (atol + rtol * Math.abs(e)));
  }
  return actual.size ? w : 0;
}
