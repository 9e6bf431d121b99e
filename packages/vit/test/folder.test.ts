// Loading checkpoint folders in Node: HF (config.json + model.safetensors + preprocessor_config.json),
// timm (config.json with `architecture`, timm names), and the errors for broken folders.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, createRuntime, init, WeightsError, writeSafetensors } from "@wasmformer/core";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { loadViTForImageClassification, loadViTModel, ViTForImageClassification, ViTModel } from "../src/vit-model.js";
import { hfConfigJson, type OracleConfig, randomWeights, toTimm } from "./oracle.js";

const c: OracleConfig = {
  D: 12,
  L: 2,
  H: 3,
  I: 20,
  p: 4,
  C: 3,
  image: 8,
  labels: 3,
  eps: 1e-6,
  act: "gelu",
  qkvBias: true,
};
const root = mkdtempSync(join(tmpdir(), "vit-folder-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string | Uint8Array>): string {
  const d = join(root, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  for (const [f, v] of Object.entries(files)) writeFileSync(join(d, f), v);
  return d;
}

describe("checkpoint folders", () => {
  const hf = randomWeights(c, 9);

  it("HF folder with a preprocessor; classify a PNG file's bytes", async () => {
    await init({ backend: "ref" });
    const d = folder("hf", {
      "config.json": JSON.stringify(hfConfigJson(c)),
      "model.safetensors": writeSafetensors(hf),
      "preprocessor_config.json": JSON.stringify({
        size: { height: 8, width: 8 },
        resample: 3,
        image_mean: 0.5,
        image_std: 0.5,
      }),
    });
    const m = await loadViTForImageClassification(d, { runtime: createRuntime({ backend: "ref" }) });
    expect(m.processor.config.resample).toBe("bicubic");
    const png = new PNG({ width: 10, height: 6 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 29) % 256;
    const bytes = new Uint8Array(PNG.sync.write(png));
    const top = await m.classify(bytes, { topK: 2 });
    expect(top.map((p) => p.label)).toEqual(expect.arrayContaining([expect.stringMatching(/^class_\d$/)]));
    expect(top[0]!.score).toBeGreaterThanOrEqual(top[1]!.score);
  });

  it("fromPretrained(folder path) loads an HF folder with F16 weights as load…(dir) does", async () => {
    await init({ backend: "ref" });
    const d = folder("hf16", {
      "config.json": JSON.stringify(hfConfigJson(c)),
      "model.safetensors": writeSafetensors(hf, undefined, { floatDtype: "F16" }),
      "preprocessor_config.json": JSON.stringify({ size: { height: 8, width: 8 }, image_mean: 0.25 }),
    });
    const runtime = createRuntime({ backend: "ref" });
    const a = await ViTForImageClassification.fromPretrained(d, { runtime });
    const b = await loadViTForImageClassification(d, { runtime });
    const base = await ViTModel.fromPretrained(d, { runtime });
    expect(a.processor.config.image_mean).toEqual([0.25, 0.25, 0.25]);
    const px = await a.pixelValues({ data: new Uint8Array(64 * 3).map((_, i) => i), width: 8, height: 8, channels: 3 });
    expect(a.forward(px).logits.data).toEqual(b.forward(px).logits.data);
    expect(base.forward(px).lastHiddenState.shape).toEqual([1, 5, 12]);
    await expect(ViTForImageClassification.fromPretrained(join(root, "missing"))).rejects.toThrow(ConfigError);
  });

  it("timm folder (architecture + pretrained_cfg) loads through fromTimm with timm's eval transform", async () => {
    await init({ backend: "ref" });
    const d = folder("timm", {
      "config.json": JSON.stringify({
        architecture: "vit_tiny_patch4_8",
        num_classes: 3,
        label_names: ["x", "y", "z"],
        pretrained_cfg: {
          input_size: [3, 8, 8],
          interpolation: "bicubic",
          crop_pct: 0.875,
          mean: [0.5, 0.5, 0.5],
          std: [0.5, 0.5, 0.5],
        },
      }),
      "model.safetensors": writeSafetensors(toTimm(c, hf)),
    });
    const m = await loadViTModel(d);
    expect(m.naming).toBe("timm");
    expect(m.config.num_attention_heads).toBe(3);
    expect(m.config.id2label).toEqual({ 0: "x", 1: "y", 2: "z" });
    expect(m.processor.config.size).toEqual({ shortest_edge: 9 });
    expect(m.processor.config.do_center_crop).toBe(true);
    expect(m.processor.config.crop_offset).toBe("round");
    const x = await m.pixelValues({ data: new Uint8Array(20 * 30 * 4).fill(7), width: 30, height: 20 });
    expect(x.shape).toEqual([1, 3, 8, 8]);
  });

  it("broken folders: no config, bad JSON, no weights", async () => {
    const d1 = folder("empty", {});
    await expect(loadViTModel(d1)).rejects.toThrow(ConfigError);
    const d2 = folder("badjson", { "config.json": "{ hidden_size: " });
    await expect(loadViTModel(d2)).rejects.toThrow(/not valid JSON/);
    const d3 = folder("noweights", { "config.json": JSON.stringify(hfConfigJson(c)) });
    await expect(loadViTModel(d3)).rejects.toThrow(WeightsError);
  });
});
