/**
 * `VisionLanguageModel.fromFolder` on a checkpoint folder written here (no shared fixtures): the
 * weights are read lazily, `preprocessor_config.json` sets the vision tower's preprocessing, and a
 * folder without it gets HF ViT's defaults.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, init, writeSafetensors } from "@wasmformer/core";
import type { ViTModel } from "@wasmformer/vit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { weightSource } from "../src/weights.js";
import { makeVlm, randomPixels } from "./oracle.js";

const dirs: string[] = [];
beforeAll(async () => {
  await init();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function writeFolder(files: Record<string, string | Uint8Array>): string {
  const dir = mkdtempSync(join(tmpdir(), "wasmformer-vlm-"));
  dirs.push(dir);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  return dir;
}

test("fromFolder reads preprocessor_config.json, else uses ViT defaults; same outputs as fromPretrained", async () => {
  const tiny = makeVlm({ seed: 4 });
  const weights = writeSafetensors(tiny.tensors);
  const config = JSON.stringify(tiny.config);
  const pre = { image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711] };
  const withPre = await VisionLanguageModel.fromFolder(
    writeFolder({
      "config.json": config,
      "model.safetensors": weights,
      "preprocessor_config.json": JSON.stringify(pre),
    }),
  );
  const plain = await VisionLanguageModel.fromFolder(
    writeFolder({ "config.json": config, "model.safetensors": weights }),
  );
  const procA = (withPre.vision as ViTModel).processor.config;
  const procB = (plain.vision as ViTModel).processor.config;
  expect(procA.image_mean).toEqual(pre.image_mean);
  expect(procA.image_std).toEqual(pre.image_std);
  expect(procB.image_mean).toEqual([0.5, 0.5, 0.5]);
  expect(procB.image_std).toEqual([0.5, 0.5, 0.5]);

  const eager = await VisionLanguageModel.fromPretrained({ config: tiny.config, weights: weightSource(tiny.tensors) });
  const px = randomPixels(1, 12, 9);
  const q = { prefixIds: [[1, 2]], suffixIds: [[3]] };
  const a = await withPre.forward(px, q);
  const b = await eager.forward(px, q);
  expect(Array.from(a.logits.data)).toEqual(Array.from(b.logits.data));
});

test("fromFolder: a folder without config.json or with a broken preprocessor_config.json is a ConfigError", async () => {
  const tiny = makeVlm({ seed: 5 });
  const weights = writeSafetensors(tiny.tensors);
  await expect(VisionLanguageModel.fromFolder(writeFolder({ "model.safetensors": weights }))).rejects.toBeInstanceOf(
    ConfigError,
  );
  await expect(
    VisionLanguageModel.fromFolder(
      writeFolder({
        "config.json": JSON.stringify(tiny.config),
        "model.safetensors": weights,
        "preprocessor_config.json": "{ not json",
      }),
    ),
  ).rejects.toThrow(/preprocessor_config\.json is not valid JSON/);
});
