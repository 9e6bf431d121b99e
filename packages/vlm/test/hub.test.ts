/**
 * Model ids (`owner/name[@revision]`) in `VisionLanguageModel.fromPretrained` / `fromFolder` and
 * `MiniGPT4.fromFolders`, against a local server with the hub's URL layout.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DownloadError, type DownloadProgress, init, writeSafetensors } from "@wasmformer/core";
import { type HubServer, startHubServer } from "@wasmformer/test-utils/hub-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { MiniGPT4 } from "../src/minigpt4.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { makeVlm, randomPixels } from "./oracle.js";

let root: string;
let server: HubServer;
const tiny = makeVlm({ seed: 4 });
const llamaTiny = makeVlm({ lm: "llama", Et: 16, Ht: 4, KVh: 2, Lt: 2, Q: 3, freq: 1, Lq: 2, Pos: 96, seed: 44 });
const dirs: Record<string, string> = {};

function write(name: string, files: Record<string, string | Uint8Array>): string {
  const d = join(root, name);
  mkdirSync(d);
  for (const [f, body] of Object.entries(files)) writeFileSync(join(d, f), body);
  dirs[name] = d;
  return d;
}

beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-vlm-hub-"));
  write("vlm", {
    "config.json": JSON.stringify(tiny.config),
    "model.safetensors": writeSafetensors(tiny.tensors),
    "preprocessor_config.json": JSON.stringify({ image_mean: [0.4, 0.5, 0.6], image_std: [0.2, 0.3, 0.4] }),
  });
  // MiniGPT-4 parts
  const pick = (prefix: string, strip = true) =>
    new Map(
      [...llamaTiny.tensors]
        .filter(([n]) => n.startsWith(prefix))
        .map(([n, t]) => [strip ? n.slice(prefix.length) : n, t]),
    );
  const c = llamaTiny.config;
  write("vit", {
    "config.json": JSON.stringify(c.vision_config),
    "model.safetensors": writeSafetensors(pick("vision_model.")),
  });
  write("blip2", {
    "config.json": JSON.stringify({ qformer_config: c.qformer_config, num_query_tokens: c.num_query_tokens }),
    "model.safetensors": writeSafetensors(
      new Map([...pick("qformer.", false), ["query_tokens", llamaTiny.tensors.get("query_tokens")!]]),
    ),
  });
  write("llama", {
    "config.json": JSON.stringify(c.text_config),
    "model.safetensors": writeSafetensors(pick("language_model.")),
  });
  write("proj", {
    "minigpt4_proj.safetensors": writeSafetensors(
      new Map([
        ["llama_proj.weight", llamaTiny.tensors.get("language_projection.weight")!],
        ["llama_proj.bias", llamaTiny.tensors.get("language_projection.bias")!],
      ]),
    ),
  });
  server = await startHubServer(
    Object.fromEntries(Object.entries(dirs).map(([name, d]) => [`acme/tiny-${name}`, { main: d }])),
  );
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const q = { prefixIds: [[1, 2]], suffixIds: [[3]] };

test("fromPretrained(id) = fromFolder(folder), with progress; the second load needs no server", async () => {
  const cacheDir = mkdtempSync(join(root, "cache-"));
  const events: DownloadProgress[] = [];
  const hub = await VisionLanguageModel.fromPretrained("acme/tiny-vlm", {
    endpoint: server.url,
    cacheDir,
    onDownload: (p) => events.push({ ...p }),
  });
  const local = await VisionLanguageModel.fromFolder(dirs.vlm);
  const px = randomPixels(1, 12, 9);
  const want = Array.from((await local.forward(px, q)).logits.data);
  expect(Array.from((await hub.forward(px, q)).logits.data)).toEqual(want);
  expect(new Set(events.map((e) => e.file))).toEqual(
    new Set(["config.json", "preprocessor_config.json", "model.safetensors"]),
  );
  hub.dispose();
  local.dispose();
  const gone = await startHubServer({});
  await gone.close();
  const again = await VisionLanguageModel.fromFolder("acme/tiny-vlm", { endpoint: gone.url, cacheDir });
  expect(Array.from((await again.forward(px, q)).logits.data)).toEqual(want);
  again.dispose();
  server.fail.set("model.safetensors", 500);
  try {
    await expect(
      VisionLanguageModel.fromPretrained("acme/tiny-vlm", { endpoint: server.url, cacheDir: `${cacheDir}-2` }),
    ).rejects.toThrow(DownloadError);
  } finally {
    server.fail.clear();
  }
});

test("MiniGPT4.fromFolders with model ids (and the projection file by URL) = with folders", async () => {
  const cacheDir = mkdtempSync(join(root, "cache-"));
  const local = await MiniGPT4.fromFolders({
    vision: dirs.vit,
    qformer: dirs.blip2,
    projection: join(dirs.proj, "minigpt4_proj.safetensors"),
    llm: dirs.llama,
  });
  const hub = await MiniGPT4.fromFolders(
    {
      vision: "acme/tiny-vit",
      qformer: "acme/tiny-blip2",
      projection: `${server.url}/acme/tiny-proj/resolve/main/minigpt4_proj.safetensors`,
      llm: "acme/tiny-llama",
    },
    { endpoint: server.url, cacheDir },
  );
  const px = randomPixels(1, 12, 7);
  const q2 = { prefixIds: [[0, 3]], suffixIds: [[4, 5]] };
  expect(Array.from((await hub.forward(px, q2)).logits.data)).toEqual(
    Array.from((await local.forward(px, q2)).logits.data),
  );
  hub.dispose();
  local.dispose();
});
