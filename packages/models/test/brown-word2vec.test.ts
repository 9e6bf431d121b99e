/**
 * The embedded Brown word vectors (checkpoints/brown-word2vec): they load with text's WordVectors,
 * frequent words have sensible neighbours, the committed analogy set scores at least what the model
 * card states, and the training script's loss falls over a few epochs on a few documents.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { init } from "@wasmformer/core";
import { WordVectors } from "@wasmformer/text";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { modelPath } from "../src/index.js";

const SCRIPT = fileURLToPath(new URL("../scripts/train-brown-word2vec.mjs", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "brown-w2v-"));
let folder: string;
let vectors: WordVectors;
beforeAll(async () => {
  await init();
  folder = await modelPath("brown-word2vec");
  vectors = WordVectors.load(readFileSync(join(folder, "vectors.bin")));
});
afterAll(() => {
  vectors?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** The questions of analogies.txt ("a b c d" per line, ": section" headers, "#" comments). */
function analogies(): string[][] {
  return readFileSync(join(folder, "analogies.txt"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && !l.startsWith(":"))
    .map((l) => l.split(/\s+/));
}

describe("brown-word2vec vectors", () => {
  test("8000 words of 64 dimensions in word2vec binary, under 2.5 MB", () => {
    expect(vectors.size).toBe(8000);
    expect(vectors.dim).toBe(64);
    expect(readFileSync(join(folder, "vectors.bin")).length).toBeLessThan(2.5 * 1024 * 1024);
    for (const w of ["the", "money", "president", "church"]) expect(vectors.has(w)).toBe(true);
  });

  test("neighbours of frequent words make sense", () => {
    const top = (w: string, k = 10) => vectors.mostSimilar(w, k).map((n) => n.word);
    const cases: [string, string[]][] = [
      ["monday", ["tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]],
      ["father", ["mother", "son", "brother", "wife", "daughter", "husband", "uncle"]],
      ["three", ["two", "four", "five", "six", "seven", "eight", "several"]],
      ["church", ["churches", "congregation", "catholic", "parish", "worship", "religious"]],
      ["blue", ["yellow", "red", "green", "purple", "gray", "white", "pale"]],
    ];
    for (const [word, expected] of cases) {
      const near = top(word);
      expect(near.filter((n) => expected.includes(n)).length, `${word}: ${near.join(", ")}`).toBeGreaterThanOrEqual(2);
    }
  });

  test("analogy score on analogies.txt is at least the model card's", () => {
    const card = readFileSync(join(folder, "README.md"), "utf8");
    const stated = Number(/Top-1 accuracy: \*\*([\d.]+) %\*\*/.exec(card)![1]) / 100;
    const qs = analogies();
    expect(qs.length).toBeGreaterThanOrEqual(40);
    for (const q of qs) for (const w of q) expect(vectors.has(w), `"${w}" is in the vocabulary`).toBe(true);
    const right = qs.filter(([a, b, c, d]) => vectors.analogy(a, b, c, 1)[0]?.word === d).length;
    expect(right / qs.length).toBeGreaterThanOrEqual(stated - 1e-9);
    expect(stated).toBeGreaterThanOrEqual(0.3);
  });
});

describe("train-brown-word2vec.mjs", () => {
  test("three epochs on 20 documents into a temp dir: the loss falls, vectors and card written", () => {
    const out = join(tmp, "toy");
    const log = execFileSync(
      process.execPath,
      ["--experimental-wasm-relaxed-simd", SCRIPT, "--docs", "20", "--epochs", "3", "--vocab", "500", "--out", out],
      { encoding: "utf8", timeout: 60_000, env: { ...process.env, WASMFORMER_THREADS: "1" } },
    );
    const losses = [...log.matchAll(/^epoch \d+ loss ([\d.]+)$/gm)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(losses[0]);
    for (const f of ["vectors.bin", "README.md"]) expect(existsSync(join(out, f))).toBe(true);
    const toy = WordVectors.load(readFileSync(join(out, "vectors.bin")));
    expect(toy.size).toBeLessThanOrEqual(500);
    toy.dispose();
  });
});
