// Test helpers: a minimal ParityCase over a case.json object, and the FORMAT.md §4 comparison for JSON kinds.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "@wasmformer/core";
import type { ParityCase } from "@wasmformer/core/parity";

export function caseOf(json: Record<string, unknown>, dir = "<inline>"): ParityCase {
  const fail = async (): Promise<never> => {
    throw new InputError("JSON kinds have no tensor files");
  };
  return {
    dir,
    name: String(json.name),
    kind: String(json.kind),
    json,
    config: (json.config ?? {}) as Record<string, unknown>,
    params: (json.params ?? {}) as Record<string, unknown>,
    expectError: json.expect_error as string | undefined,
    file: async (n: string) => new Uint8Array(await readFile(join(dir, n))),
    io: fail,
    inputs: fail,
    model: fail,
  };
}

/** Paths (dot/bracket) of values that are float matrices, compared with the tolerance. */
function isFloatPath(path: string, dtype: unknown): boolean {
  return /(texts|sequences)_to_matrix/.test(path) || (path.startsWith("padded") && dtype === "float32");
}

/** Differences between actual and expected JSON (FORMAT §4); empty when they match. */
export function compareJson(
  actual: unknown,
  expected: unknown,
  tol: { atol: number; rtol: number },
  dtype?: unknown,
  path = "",
): string[] {
  const out: string[] = [];
  const rec = (a: unknown, e: unknown, p: string) => {
    if (typeof e === "number") {
      if (typeof a !== "number") return out.push(`${p}: expected number ${e}, got ${JSON.stringify(a)}`);
      if (isFloatPath(p, dtype)) {
        if (!(Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e))) out.push(`${p}: ${a} vs ${e}`);
      } else if (a !== e) out.push(`${p}: ${a} !== ${e}`);
      return;
    }
    if (e === null || typeof e !== "object") {
      if (a !== e) out.push(`${p}: ${JSON.stringify(a)} !== ${JSON.stringify(e)}`);
      return;
    }
    if (Array.isArray(e)) {
      if (!Array.isArray(a) || a.length !== e.length) {
        return out.push(`${p}: expected a list of ${e.length}, got ${JSON.stringify(a)?.slice(0, 200)}`);
      }
      for (let i = 0; i < e.length; i++) rec(a[i], e[i], `${p}[${i}]`);
      return;
    }
    if (a === null || typeof a !== "object" || Array.isArray(a)) return out.push(`${p}: expected an object`);
    const ka = Object.keys(a as object).sort();
    const ke = Object.keys(e as object).sort();
    if (JSON.stringify(ka) !== JSON.stringify(ke))
      out.push(`${p}: keys ${JSON.stringify(ka)} vs ${JSON.stringify(ke)}`);
    for (const k of ke) rec((a as Record<string, unknown>)[k], (e as Record<string, unknown>)[k], p ? `${p}.${k}` : k);
  };
  rec(actual, expected, path);
  return out;
}
