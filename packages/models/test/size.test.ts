import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { MODEL_NAMES, modelPath, modelUrl } from "../src/index.js";

const root = fileURLToPath(new URL("../checkpoints/", import.meta.url));
const BUDGET = 12 * 1024 * 1024;

function bytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n += e.isDirectory() ? bytes(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  }
  return n;
}

describe("@wasmformer/models", () => {
  test("all checkpoints together stay under the 12 MB budget", () => {
    expect(bytes(root)).toBeLessThan(BUDGET);
  });

  test("modelUrl/modelPath point into checkpoints/; unknown names are typed errors", async () => {
    for (const name of MODEL_NAMES) {
      expect(modelUrl(name).href.endsWith(`/checkpoints/${name}/`)).toBe(true);
      expect(await modelPath(name)).toBe(`${join(root, name)}/`);
    }
    expect(() => modelUrl("nope" as never)).toThrow(InputError);
    expect(() => modelUrl("nope" as never)).toThrow(/unknown model "nope"/);
  });
});
