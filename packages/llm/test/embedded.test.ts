/**
 * The CLI's default model comes from the optional `@wasmformer/models` package, imported at run
 * time: found beside llm, else in the current directory, else a typed error saying how to get it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { InputError } from "@wasmformer/core";
import { afterAll, describe, expect, test } from "vitest";
import { DEFAULT_MODEL, EMBEDDED_MODELS_PACKAGE, embeddedModelFolder } from "../src/embedded.js";

const missing = Object.assign(new Error("Cannot find package '@wasmformer/models'"), { code: "ERR_MODULE_NOT_FOUND" });
const tmp = mkdtempSync(join(tmpdir(), "wf-embedded-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("embeddedModelFolder", () => {
  test("asks the models package for brown-lm", async () => {
    const asked: string[] = [];
    const importer = async (s: string) => {
      expect(s).toBe(EMBEDDED_MODELS_PACKAGE);
      return {
        modelPath: async (name: string) => {
          asked.push(name);
          return `/models/${name}/`;
        },
      };
    };
    expect(await embeddedModelFolder(importer, tmp)).toBe("/models/brown-lm/");
    expect(asked).toEqual([DEFAULT_MODEL]);
  });

  test("absent everywhere: an InputError that names the package and --model", async () => {
    const importer = async () => {
      throw missing;
    };
    const err = await embeddedModelFolder(importer, tmp).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toContain("npm install @wasmformer/models");
    expect(err.message).toContain("--model <folder>");
  });

  test("not beside llm but installed in the current directory: loaded from there", async () => {
    const pkg = join(tmp, "project", "node_modules", "@wasmformer", "models");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: EMBEDDED_MODELS_PACKAGE, main: "index.js" }));
    writeFileSync(join(pkg, "index.js"), "exports.modelPath = async (n) => '/project/' + n;");
    const seen: string[] = [];
    const importer = async (s: string) => {
      seen.push(s);
      if (s === EMBEDDED_MODELS_PACKAGE) throw missing;
      return import(s);
    };
    expect(await embeddedModelFolder(importer, join(tmp, "project"))).toBe("/project/brown-lm");
    expect(seen[1]).toBe(pathToFileURL(join(pkg, "index.js")).href);
  });

  test("other import failures are not hidden", async () => {
    const broken = new SyntaxError("Unexpected token");
    await expect(embeddedModelFolder(async () => Promise.reject(broken), tmp)).rejects.toBe(broken);
  });

  test("a models package without modelPath: InputError", async () => {
    await expect(embeddedModelFolder(async () => ({}), tmp)).rejects.toThrow(/does not export modelPath/);
  });
});
