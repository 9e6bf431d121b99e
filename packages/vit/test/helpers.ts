// Test helpers: a ParityCase over a fixture folder, and tolerance comparison (FORMAT.md §4).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ParityCase, parseSafetensors, type Tensor } from "@wasmformer/core";

export const FIXTURES = process.env.WASMFORMER_FIXTURES ?? "/work/shared/fixtures";
export const haveFixtures = existsSync(join(FIXTURES, "FORMAT.md"));

export function fixtureCase(name: string): ParityCase {
  const dir = join(FIXTURES, name);
  const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
  const files: Record<string, string> = json.files ?? {};
  const file = async (r: string) => new Uint8Array(readFileSync(join(dir, files[r] ?? r)));
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

/** Largest violation of |a − e| ≤ atol + rtol·|e| (≤ 0 means within tolerance), plus shape check. */
export function worst(actual: Tensor, expected: Tensor, atol: number, rtol: number): number {
  if (actual.shape.join() !== expected.shape.join())
    throw new Error(`shape [${actual.shape}] vs expected [${expected.shape}]`);
  let w = Number.NEGATIVE_INFINITY;
  const a = actual.data;
  const e = expected.data;
  for (let i = 0; i < e.length; i++) {
    const v = Math.abs(a[i]! - e[i]!) - (atol + rtol * Math.abs(e[i]!));
    if (!(v <= w)) w = Number.isNaN(v) ? Number.POSITIVE_INFINITY : Math.max(w, v);
  }
  return w;
}
