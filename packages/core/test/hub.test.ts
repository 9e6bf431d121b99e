import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type HubServer, startHubServer } from "../../../tools/test-utils/src/hub-server.js";
import { prng } from "../../../tools/test-utils/src/prng.js";
import {
  AbortError,
  DownloadError,
  type DownloadProgress,
  defaultHubCacheDir,
  InputError,
  openModelFiles,
  parseModelId,
  Tensor,
  writeSafetensors,
} from "../src/index.js";

let root: string;
let server: HubServer;
const weights = writeSafetensors({ w: new Tensor(Float32Array.from([1, 2, 3, 4]), [2, 2]) });

async function folder(name: string, files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = join(root, name);
  for (const [f, body] of Object.entries(files)) {
    await mkdir(join(dir, f, ".."), { recursive: true });
    await writeFile(join(dir, f), body);
  }
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "wf-hub-"));
  const main = await folder("main", {
    "config.json": '{"rev":"main"}',
    "model.safetensors": weights,
    "1_Pooling/config.json": '{"pooling":true}',
  });
  const v1 = await folder("v1", { "config.json": '{"rev":"v1"}' });
  server = await startHubServer({ "acme/tiny-model": { main, v1, "refs/pr/1": v1 } });
});
afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  server.fail.clear();
  server.slow.clear();
});

const cacheDir = () => mkdtemp(join(root, "cache-"));

describe("parseModelId", () => {
  it("accepts owner/name with HF's characters and an optional @revision", () => {
    expect(parseModelId("openai-community/gpt2")).toEqual({
      owner: "openai-community",
      name: "gpt2",
      repo: "openai-community/gpt2",
      revision: undefined,
    });
    expect(parseModelId("HuggingFaceTB/SmolLM2-135M-Instruct@v1.0")?.revision).toBe("v1.0");
    expect(parseModelId("google/vit-base-patch16-224@refs/pr/3")?.revision).toBe("refs/pr/3");
  });
  it("rejects paths and malformed ids", () => {
    for (const s of [
      "gpt2",
      "./acme/model",
      "/acme/model",
      "../acme/model",
      "acme/model/extra",
      "acme/-model",
      "acme/model.",
      "ac--me/model",
      "acme/mo..del",
      "acme/model@",
      "acme/model@../x",
      "acme/mo del",
      "C:/models",
      `acme/${"x".repeat(97)}`,
    ]) {
      expect(parseModelId(s), s).toBeUndefined();
    }
  });

  it("seeded random strings: never throws; an accepted id is never a relative or absolute path", () => {
    const r = prng(17);
    const alphabet = ["a", "Z", "0", "_", "-", ".", "/", "@", " ", "..", "\\", ":", "%"];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const n = r.int(1, 13);
      const s = Array.from({ length: n }, () => alphabet[r.int(0, alphabet.length)]).join("");
      const id = parseModelId(s);
      if (!id) continue;
      accepted++;
      expect(s.startsWith(".") || s.startsWith("/") || s.includes("\\") || s.includes(":"), s).toBe(false);
      expect(`${id.owner}/${id.name}${id.revision === undefined ? "" : `@${id.revision}`}`).toBe(s);
      expect(id.revision?.split("/").includes(".."), s).not.toBe(true);
    }
    expect(accepted).toBeGreaterThan(10);
  });
});

describe("openModelFiles", () => {
  it("reads an existing folder as a folder, even when its path looks like an id", async () => {
    const cwd = process.cwd();
    await folder("acme/tiny-model", { "config.json": '{"local":true}' });
    process.chdir(root);
    try {
      const files = await openModelFiles("acme/tiny-model", { endpoint: server.url, cacheDir: await cacheDir() });
      expect(files.hub).toBeUndefined();
      expect(await files.text("config.json")).toBe('{"local":true}');
      expect(await files.text("tokenizer.json")).toBeUndefined();
    } finally {
      process.chdir(cwd);
    }
    expect(server.requests).toEqual([]);
  });

  it("downloads from the endpoint with progress, then reads from the cache with the server stopped", async () => {
    const dir = await cacheDir();
    const events: DownloadProgress[] = [];
    const files = await openModelFiles("acme/tiny-model", {
      endpoint: `${server.url}/`,
      cacheDir: dir,
      onDownload: (p) => events.push({ ...p }),
    });
    expect(files.hub).toEqual({ repo: "acme/tiny-model", revision: "main", endpoint: server.url });
    expect(files.where("config.json")).toBe(`${server.url}/acme/tiny-model/resolve/main/config.json`);
    expect(await files.text("config.json")).toBe('{"rev":"main"}');
    expect(await files.text("tokenizer.json")).toBeUndefined(); // 404: absent
    expect(await files.sub("1_Pooling").text("config.json")).toBe('{"pooling":true}');
    const st = await files.safetensors("model.safetensors");
    expect(Array.from((await st?.get("w"))?.data ?? [])).toEqual([1, 2, 3, 4]);
    await st?.close();
    expect(events[0]).toEqual({ file: "config.json", loaded: 0, total: 14 });
    expect(events.filter((e) => e.file === "config.json").at(-1)).toEqual({
      file: "config.json",
      loaded: 14,
      total: 14,
    });
    expect(events.filter((e) => e.file === "model.safetensors").at(-1)).toEqual({
      file: "model.safetensors",
      loaded: weights.length,
      total: weights.length,
    });
    expect(events.some((e) => e.file === "1_Pooling/config.json")).toBe(true);
    expect(await readdir(join(dir, "acme", "tiny-model", "main"))).toEqual(
      expect.arrayContaining(["config.json", "model.safetensors", "1_Pooling", ".absent"]),
    );

    // second load: no request at all (the server is not even listening any more)
    const offline = await startHubServer({});
    const before = server.requests.length;
    await offline.close();
    const again = await openModelFiles("acme/tiny-model", { endpoint: offline.url, cacheDir: dir });
    expect(await again.text("config.json")).toBe('{"rev":"main"}');
    expect(await again.text("tokenizer.json")).toBeUndefined();
    expect(await again.exists("model.safetensors")).toBe(true);
    expect(await again.exists("tokenizer.json")).toBe(false);
    const st2 = await again.safetensors("model.safetensors");
    expect(st2?.names()).toEqual(["w"]);
    await st2?.close();
    expect(server.requests.length).toBe(before);
    expect(offline.requests).toEqual([]);
  });

  it("keeps revisions apart (@revision, the revision option, a revision with a slash)", async () => {
    const dir = await cacheDir();
    const main = await openModelFiles("acme/tiny-model", { endpoint: server.url, cacheDir: dir });
    const v1 = await openModelFiles("acme/tiny-model@v1", { endpoint: server.url, cacheDir: dir });
    const v1opt = await openModelFiles("acme/tiny-model", { endpoint: server.url, cacheDir: dir, revision: "v1" });
    const pr = await openModelFiles("acme/tiny-model@refs/pr/1", { endpoint: server.url, cacheDir: dir });
    expect(await main.text("config.json")).toBe('{"rev":"main"}');
    expect(await v1.text("config.json")).toBe('{"rev":"v1"}');
    expect(await v1opt.text("config.json")).toBe('{"rev":"v1"}');
    expect(await pr.text("config.json")).toBe('{"rev":"v1"}');
    expect(pr.where("config.json")).toBe(`${server.url}/acme/tiny-model/resolve/refs%2Fpr%2F1/config.json`);
    await expect(
      openModelFiles("acme/tiny-model@v1", { endpoint: server.url, cacheDir: dir, revision: "main" }),
    ).rejects.toThrow(InputError);
  });

  it("honours HF_HOME and HF_ENDPOINT", async () => {
    const home = await mkdtemp(join(root, "hf-home-"));
    const saved = { home: process.env.HF_HOME, endpoint: process.env.HF_ENDPOINT };
    process.env.HF_HOME = home;
    process.env.HF_ENDPOINT = server.url;
    try {
      expect(await defaultHubCacheDir()).toBe(join(home, "wasmformer"));
      const files = await openModelFiles("acme/tiny-model@v1");
      expect(await files.text("config.json")).toBe('{"rev":"v1"}');
      expect(await readdir(join(home, "wasmformer", "acme", "tiny-model", "v1"))).toContain("config.json");
    } finally {
      for (const [k, v] of [
        ["HF_HOME", saved.home],
        ["HF_ENDPOINT", saved.endpoint],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("reports HTTP errors other than 404 and network failures as DownloadError naming URL and status", async () => {
    server.fail.set("config.json", 500);
    const files = await openModelFiles("acme/tiny-model", { endpoint: server.url, cacheDir: await cacheDir() });
    const e = await files.text("config.json").catch((x) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect(e.status).toBe(500);
    expect(e.url).toBe(`${server.url}/acme/tiny-model/resolve/main/config.json`);
    expect(e.message).toContain("HTTP 500");
    expect(e.message).toContain(e.url);
    server.fail.set("config.json", 401);
    await expect(files.text("config.json")).rejects.toThrow(
      /HTTP 401 \(no such repository, or it is private or gated\)/,
    );

    const down = await startHubServer({});
    await down.close();
    const offline = await openModelFiles("acme/tiny-model", { endpoint: down.url, cacheDir: await cacheDir() });
    const n = await offline.text("config.json").catch((x) => x);
    expect(n).toBeInstanceOf(DownloadError);
    expect(n.status).toBeUndefined();
    expect(n.message).toContain(`cannot fetch ${down.url}/acme/tiny-model/resolve/main/config.json`);
  });

  it("stops on abort, caching nothing of the interrupted file", async () => {
    const dir = await cacheDir();
    const before = server.requests.length;
    const ac = new AbortController();
    server.slow.set("model.safetensors", 30);
    const files = await openModelFiles("acme/tiny-model", {
      endpoint: server.url,
      cacheDir: dir,
      signal: ac.signal,
      onDownload: (p) => {
        if (p.loaded > 0) ac.abort();
      },
    });
    await expect(files.safetensors("model.safetensors")).rejects.toThrow(AbortError);
    await expect(files.text("config.json")).rejects.toThrow(AbortError); // no request once aborted
    const left = await readdir(join(dir, "acme", "tiny-model", "main")).catch(() => []);
    expect(left).toEqual([]);
    expect(server.requests.slice(before)).toEqual(["GET /acme/tiny-model/resolve/main/model.safetensors"]);
  });

  it("rejects bad arguments with InputError", async () => {
    await expect(openModelFiles("")).rejects.toThrow(InputError);
    await expect(openModelFiles(42 as never)).rejects.toThrow(InputError);
    await expect(openModelFiles("acme/tiny-model", { endpoint: "ftp://x" })).rejects.toThrow(InputError);
    await expect(openModelFiles("acme/tiny-model", { revision: "../x" })).rejects.toThrow(InputError);
    for (const bad of [{ endpoint: 1 }, { cacheDir: {} }, { revision: 7 }, { onDownload: "x" }]) {
      await expect(openModelFiles("acme/tiny-model", bad as never), JSON.stringify(bad)).rejects.toThrow(InputError);
    }
    const files = await openModelFiles("acme/tiny-model", { endpoint: server.url, cacheDir: await cacheDir() });
    await expect(files.text("../../etc/passwd")).rejects.toThrow(InputError);
    expect(() => files.sub("..")).toThrow(InputError);
  });
});
