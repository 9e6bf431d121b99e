import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { init, parseSafetensors } from "@wasmformer/core";
import { ViTForImageClassification } from "@wasmformer/vit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MNIST_MEAN, MNIST_STD, mnistSplit, S } from "../scripts/train-digits-vit.mjs";
import { modelPath } from "../src/index.js";

type Digit = { bytes: Uint8Array; label: number };
const PKG = fileURLToPath(new URL("..", import.meta.url));
const { test: heldOut } = mnistSplit() as { test: Digit[] };

/** A digit as a `scale`× larger RGBA canvas (nearest-neighbour strokes): white on `background`. */
function canvasOf(d: Digit, scale: number, background: [number, number, number, number]): ImageData {
  const W = S * scale;
  const data = new Uint8ClampedArray(W * W * 4);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      const v = d.bytes[Math.floor(y / scale) * S + Math.floor(x / scale)]!;
      const o = (y * W + x) * 4;
      if (v === 0) data.set(background, o);
      else data.set([v, v, v, 255], o);
    }
  }
  return { data, width: W, height: W, colorSpace: "srgb" } as ImageData;
}

describe("digits-vit checkpoint", () => {
  let vit: ViTForImageClassification;
  let dir: string;
  beforeAll(async () => {
    await init(); // the wasm SIMD backend (the reference backend would take minutes for 1 500 digits)
    dir = await modelPath("digits-vit");
    vit = await ViTForImageClassification.fromPretrained(dir);
  });
  afterAll(() => vit.dispose());

  test("is a ViTForImageClassification over the labels 0…9 with F16 weights and MNIST's normalisation", () => {
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(config.architectures).toEqual(["ViTForImageClassification"]);
    expect(config.id2label).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), String(i)])));
    expect(config.image_size).toBe(28);
    const file = parseSafetensors(readFileSync(join(dir, "model.safetensors")));
    expect(new Set(file.infos().map((t) => t.dtype))).toEqual(new Set(["F16"]));
    const pre = vit.processor.config;
    expect(pre.size).toEqual({ height: 28, width: 28 });
    expect(pre.image_mean).toEqual([MNIST_MEAN, MNIST_MEAN, MNIST_MEAN]);
    expect(pre.image_std).toEqual([MNIST_STD, MNIST_STD, MNIST_STD]);
  });

  test("classifies the first held-out digit of every class right, the 7 among them", async () => {
    const firsts = Array.from({ length: 10 }, (_, d) => heldOut.find((e) => e.label === d)!);
    const preds = await vit.classify(
      firsts.map((e) => ({ data: e.bytes, width: S, height: S, channels: 1 })),
      { topK: 3 },
    );
    expect(preds.map((p) => p[0]!.label)).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    expect(preds[7]![0]!.score).toBeGreaterThan(0.5);
  });

  test("≥ 98 % on the 1 500 held-out digits (never trained on)", async () => {
    expect(heldOut).toHaveLength(1500);
    let correct = 0;
    for (let i = 0; i < heldOut.length; i += 250) {
      const chunk = heldOut.slice(i, i + 250);
      const preds = await vit.classify(
        chunk.map((e) => ({ data: e.bytes, width: S, height: S, channels: 1 })),
        { topK: 1 },
      );
      preds.forEach((p, k) => {
        if (p[0]!.index === chunk[k]!.label) correct++;
      });
    }
    expect(correct / heldOut.length).toBeGreaterThanOrEqual(0.98);
  });

  test("an RGBA canvas drawing (white on black or on transparent) goes through the preprocessor to the digit", async () => {
    const seven = heldOut.find((e) => e.label === 7)!;
    for (const bg of [
      [0, 0, 0, 255],
      [0, 0, 0, 0],
    ] as [number, number, number, number][]) {
      const canvas = canvasOf(seven, 10, bg);
      const px = await vit.pixelValues(canvas);
      expect(px.shape).toEqual([1, 3, 28, 28]);
      // grey replicated on R, G, B; the black background is MNIST's background value
      const n = 28 * 28;
      expect(px.data.subarray(0, n)).toEqual(px.data.subarray(n, 2 * n));
      expect(px.data[0]).toBeCloseTo(-MNIST_MEAN / MNIST_STD, 5);
      // shrinking the 280×280 drawing gives back (about) the 28×28 digit
      const direct = await vit.pixelValues({ data: seven.bytes, width: S, height: S, channels: 1 });
      let err = 0;
      for (let i = 0; i < n; i++) err += Math.abs(px.data[i]! - direct.data[i]!);
      expect(err / n).toBeLessThan(0.25);
      const [top] = await vit.classify(canvas, { topK: 1 });
      expect(top!.label).toBe("7");
    }
  });
});

describe("train-digits-vit.mjs", () => {
  test("a few seeded steps into a temp dir: the loss falls and the folder loads", async () => {
    // the script runs on the built packages, like a user's `node` command
    const tsc = spawnSync(
      process.execPath,
      [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", join(PKG, "../vit")],
      {
        encoding: "utf8",
      },
    );
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const out = mkdtempSync(join(tmpdir(), "digits-vit-"));
    try {
      const args = ["--epochs", "1", "--warmup", "0", "--max-steps", "12", "--out", out];
      const r = spawnSync(
        process.execPath,
        ["--experimental-wasm-relaxed-simd", join(PKG, "scripts/train-digits-vit.mjs"), ...args],
        { encoding: "utf8", env: { ...process.env, WASMFORMER_THREADS: "1" } },
      );
      expect(r.status, r.stderr).toBe(0);
      const losses = [...r.stdout.matchAll(/^step (\d+) loss ([\d.]+)$/gm)].map((m) => Number(m[2]));
      expect(losses).toHaveLength(12);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(mean(losses.slice(-4))).toBeLessThan(mean(losses.slice(0, 4)));
      const m = await ViTForImageClassification.fromPretrained(out);
      expect(m.config.num_channels).toBe(3);
      m.dispose();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
