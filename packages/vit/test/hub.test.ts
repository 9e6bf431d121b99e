// Model ids (`owner/name[@revision]`) in ViT's loaders, against a local server with the hub's URL
// layout: download progress, the cache (second load with the server gone), typed errors.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, DownloadError, type DownloadProgress, init, Tensor, writeSafetensors } from "@wasmformer/core";
import { type HubServer, startHubServer } from "@wasmformer/test-utils/hub-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadViTModel, ViTForImageClassification, ViTModel } from "../src/vit-model.js";
import { hfConfigJson, type OracleConfig, randomWeights } from "./oracle.js";

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
let root: string;
let dir: string;
let server: HubServer;

beforeAll(async () => {
  await init({ backend: "ref" });
  root = mkdtempSync(join(tmpdir(), "vit-hub-"));
  dir = join(root, "vit");
  mkdirSync(dir);
  writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(randomWeights(c, 4)));
  writeFileSync(join(dir, "preprocessor_config.json"), JSON.stringify({ size: { height: 8, width: 8 }, resample: 3 }));
  server = await startHubServer({ "google/vit-tiny-test": { main: dir } });
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const pixels = () =>
  new Tensor(
    Float32Array.from({ length: 3 * 8 * 8 }, (_, i) => Math.sin(i)),
    [1, 3, 8, 8],
  );

describe("ViT from a model id", () => {
  it("ViTForImageClassification.fromPretrained(id) = the local folder; the second load is offline", async () => {
    const cacheDir = mkdtempSync(join(root, "cache-"));
    const events: DownloadProgress[] = [];
    const m = await ViTForImageClassification.fromPretrained("google/vit-tiny-test", {
      endpoint: server.url,
      cacheDir,
      onDownload: (p) => events.push({ ...p }),
    });
    expect(m.processor.config.resample).toBe("bicubic");
    const local = await ViTForImageClassification.fromPretrained(dir);
    const want = local.forward(pixels()).logits.toArray();
    expect(m.forward(pixels()).logits.toArray()).toEqual(want);
    expect(new Set(events.map((e) => e.file))).toEqual(
      new Set(["config.json", "preprocessor_config.json", "model.safetensors"]),
    );
    m.dispose();
    local.dispose();

    const gone = await startHubServer({});
    await gone.close();
    const again = await ViTModel.fromPretrained("google/vit-tiny-test", { endpoint: gone.url, cacheDir });
    expect(again.hasClassifier).toBe(true);
    again.dispose();
    const byFn = await loadViTModel("google/vit-tiny-test@main", { endpoint: gone.url, cacheDir });
    byFn.dispose();
  });

  it("a missing repository is a ConfigError naming the URL; a server error a DownloadError", async () => {
    const cacheDir = mkdtempSync(join(root, "cache-"));
    await expect(ViTModel.fromPretrained("google/nothing-here", { endpoint: server.url, cacheDir })).rejects.toThrow(
      new ConfigError(`cannot read ${server.url}/google/nothing-here/resolve/main/config.json: no such file`),
    );
    server.fail.set("preprocessor_config.json", 502);
    try {
      const e = await ViTModel.fromPretrained("google/vit-tiny-test", { endpoint: server.url, cacheDir }).catch(
        (x) => x,
      );
      expect(e).toBeInstanceOf(DownloadError);
      expect(e.status).toBe(502);
    } finally {
      server.fail.clear();
    }
  });
});
