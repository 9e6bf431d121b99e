/**
 * The mini MiniGPT-4 checkpoint (checkpoints/digits-minigpt4): it loads in one call from its folder
 * (the ViT and the LM come from the digits-vit and brown-lm folders), names known held-out digits,
 * answers "what digit is this?" right on ≥ 95 % of a fixed held-out subset, and its training script
 * lowers the loss in a few steps.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { init, Tensor } from "@wasmformer/core";
import { MiniGPT4, type VisionLanguageModel } from "@wasmformer/vlm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
// @ts-expect-error: a plain ESM script, no type declarations
import { mnistSplit, normalize, S } from "../scripts/train-digits-vit.mjs";
import { modelPath } from "../src/index.js";

/** The answers: the digit as a numeral. */
const WORDS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const script = fileURLToPath(new URL("../scripts/train-digits-minigpt4.mjs", import.meta.url));

const C = 3; // digits-vit takes RGB (grey on every channel)
const QUESTION = "what digit is this?";

/** The held-out digits of digits-vit's split (per class, the package's samples from round(0.85 n) on), in the model's input. */
const { test: heldOut } = mnistSplit();
function pixels(list: { bytes: Uint8Array }[]): Tensor {
  const n = C * S * S;
  const px = new Float32Array(list.length * n);
  list.forEach((e, b) => {
    const g = normalize(e.bytes);
    for (let ch = 0; ch < C; ch++) px.set(g, b * n + ch * S * S);
  });
  return new Tensor(px, [list.length, C, S, S]);
}
/** Held-out digit `i` of class `d`. */
const digit = (d: number, i: number) => heldOut.filter((e: { label: number }) => e.label === d)[i]!;

let vlm: VisionLanguageModel;
beforeAll(async () => {
  await init();
  vlm = await MiniGPT4.fromFolder(await modelPath("digits-minigpt4"), { maxBatch: 50 });
});
afterAll(() => vlm?.dispose());

describe("digits-minigpt4", () => {
  test("loads from its folder: Q-Former and projection trained here, ViT and LM from their folders", async () => {
    const dir = await modelPath("digits-minigpt4");
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(cfg.model_type).toBe("minigpt4");
    expect(cfg.vision_model_path).toBe("../digits-vit");
    expect(cfg.language_model_path).toBe("../brown-lm");
    expect(vlm.adapter.outputDim).toBe(vlm.languageModel.arch.dim);
    expect(vlm.tokenizer).toBeDefined();
  });

  test("names known held-out digits, given as grey images (digits-vit's preprocessor) or as pixel values", async () => {
    for (const [d, i] of KNOWN) {
      const { bytes } = digit(d, i);
      expect(await vlm.ask({ data: bytes, width: S, height: S, channels: 1 }, QUESTION)).toBe(WORDS[d]);
      expect(await vlm.ask(pixels([digit(d, i)]), QUESTION)).toBe(WORDS[d]);
    }
  });

  test('answers "what digit is this?" right on ≥ 95 % of 200 held-out digits (20 per class)', async () => {
    const per = 20;
    const subset = WORDS.flatMap((_, d) => Array.from({ length: per }, (_, i) => digit(d, i)));
    let right = 0;
    for (let b = 0; b < subset.length; b += 50) {
      const part = subset.slice(b, b + 50);
      const r = await vlm.generateAll(pixels(part), QUESTION, { maxNewTokens: 8, temperature: 0 });
      r.answers.forEach((a, k) => {
        if (a === WORDS[part[k]!.label]) right++;
      });
    }
    expect(right / (10 * per)).toBeGreaterThanOrEqual(0.95);
  });

  test("a few steps lower the loss of a fixed batch; the saved folder loads back", async () => {
    const out = mkdtempSync(join(tmpdir(), "wasmformer-minigpt4-train-"));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--experimental-wasm-relaxed-simd", script, "--max-steps", "5", "--batch", "8", "--eval", "1", "--out", out],
        { env: { ...process.env, WASMFORMER_THREADS: "1" }, timeout: 90_000 },
      );
      const m = /fixed-batch loss ([\d.]+) → ([\d.]+)/.exec(stdout);
      expect(m, stdout).not.toBeNull();
      expect(Number(m![2])).toBeLessThan(Number(m![1]));
      // the script reloads the saved folder with MiniGPT4.fromFolder and scores it
      expect(stdout).toMatch(/held-out accuracy of "what digit is this\?": [\d.]+ % of 10 digits/);
      const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
      expect(cfg.model_type).toBe("minigpt4");
      expect(cfg.qformer_config.encoder_hidden_size).toBe(64);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

/** [digit, index among its held-out samples]: the first held-out sample of every digit. */
const KNOWN: [number, number][] = [
  [0, 0],
  [1, 0],
  [2, 0],
  [3, 0],
  [4, 0],
  [5, 0],
  [6, 0],
  [7, 0],
  [8, 0],
  [9, 0],
];
