/**
 * Model ids (`owner/name[@revision]`) in `fromPretrained` and the CLI's `--model`, against a local
 * server with the hub's URL layout: tiny random GPT-2 (with a byte-level tokenizer.json) and Llama
 * (no tokenizer) checkpoints.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  DownloadError,
  type DownloadProgress,
  init,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import { type HubServer, startHubServer } from "@wasmformer/test-utils/hub-server";
import { gpt2TokenizerJson } from "@wasmformer/test-utils/tokenizer";
import { BYTE_TO_CHAR } from "@wasmformer/text";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

const PKG = fileURLToPath(new URL("..", import.meta.url));
let root: string;
let server: HubServer;
let gpt2Dir: string;

beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-llm-hub-"));
  // GPT-2: the 256 byte tokens + <|endoftext|>, no merges
  gpt2Dir = join(root, "gpt2");
  mkdirSync(gpt2Dir);
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, b) => {
    vocab[c] = b;
  });
  vocab["<|endoftext|>"] = 256;
  const tiny = makeTiny({ V: 257, E: 16, H: 2, L: 2, P: 48, seed: 5 });
  writeFileSync(join(gpt2Dir, "config.json"), JSON.stringify(tiny.config));
  writeFileSync(join(gpt2Dir, "model.safetensors"), writeSafetensors(tiny.tensors));
  writeFileSync(join(gpt2Dir, "tokenizer.json"), JSON.stringify(gpt2TokenizerJson(vocab, [], 256)));
  // Llama: weights only
  const llamaDir = join(root, "llama");
  mkdirSync(llamaDir);
  const llama = makeTinyLlama({ seed: 3 });
  writeFileSync(join(llamaDir, "config.json"), JSON.stringify(llama.config));
  writeFileSync(join(llamaDir, "model.safetensors"), writeSafetensors(llama.tensors));
  // a repository with PyTorch weights only
  const binDir = join(root, "bin");
  mkdirSync(binDir);
  writeFileSync(join(binDir, "config.json"), JSON.stringify(tiny.config));
  writeFileSync(join(binDir, "pytorch_model.bin"), "not really");
  server = await startHubServer({
    "acme/tiny-gpt2": { main: gpt2Dir },
    "acme/tiny-llama": { main: llamaDir },
    "acme/torch-only": { main: binDir },
  });
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});
afterEach(() => server.fail.clear());

/** A server on a port nobody listens on any more: every request is refused. */
async function deadEndpoint(): Promise<string> {
  const s = await startHubServer({});
  await s.close();
  return s.url;
}

describe("fromPretrained with a model id", () => {
  test("GPT-2: downloads with progress, generates as the local folder does, then loads offline", async () => {
    const cacheDir = mkdtempSync(join(root, "cache-"));
    const events: DownloadProgress[] = [];
    const model = await GPT2LMHeadModel.fromPretrained("acme/tiny-gpt2", {
      endpoint: server.url,
      cacheDir,
      onDownload: (p) => events.push({ ...p }),
    });
    const local = await GPT2LMHeadModel.fromPretrained(gpt2Dir);
    const want = await local.generateAll("hello", { maxNewTokens: 6, stopIds: [] });
    expect((await model.generateAll("hello", { maxNewTokens: 6, stopIds: [] })).texts).toEqual(want.texts);
    expect(new Set(events.map((e) => e.file))).toEqual(new Set(["config.json", "tokenizer.json", "model.safetensors"]));
    const last = events.filter((e) => e.file === "model.safetensors").at(-1);
    expect(last?.loaded).toBe(last?.total);
    model.dispose();
    local.dispose();

    const again = await GPT2LMHeadModel.fromPretrained("acme/tiny-gpt2", {
      endpoint: await deadEndpoint(),
      cacheDir,
      onDownload: () => {
        throw new Error("nothing should download");
      },
    });
    expect((await again.generateAll("hello", { maxNewTokens: 6, stopIds: [] })).texts).toEqual(want.texts);
    again.dispose();
  });

  test("Llama through AutoModelForCausalLM (no tokenizer files: probed once, then cached as absent)", async () => {
    const cacheDir = mkdtempSync(join(root, "cache-"));
    const before = server.requests.length;
    const model = await AutoModelForCausalLM.fromPretrained("acme/tiny-llama", { endpoint: server.url, cacheDir });
    expect(model).toBeInstanceOf(LlamaForCausalLM);
    expect(model.tokenizer).toBeUndefined();
    expect(server.requests.slice(before).sort()).toEqual(
      ["config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"]
        .map((f) => `GET /acme/tiny-llama/resolve/main/${f}`)
        .sort(),
    );
    const ids = (await model.generateAll([[1, 2, 3]], { maxNewTokens: 4, stopIds: [] })).ids;
    model.dispose();
    const offline = await LlamaForCausalLM.fromPretrained("acme/tiny-llama", {
      endpoint: await deadEndpoint(),
      cacheDir,
    });
    expect((await offline.generateAll([[1, 2, 3]], { maxNewTokens: 4, stopIds: [] })).ids).toEqual(ids);
    offline.dispose();
  });

  test("a missing repository, a server error, PyTorch-only weights and an abort are typed errors", async () => {
    const cacheDir = mkdtempSync(join(root, "cache-"));
    const o = { endpoint: server.url, cacheDir };
    await expect(AutoModelForCausalLM.fromPretrained("acme/no-such-model", o)).rejects.toThrow(
      new ConfigError(`cannot read ${server.url}/acme/no-such-model/resolve/main/config.json: no such file`),
    );
    server.fail.set("model.safetensors", 503);
    const e = await GPT2LMHeadModel.fromPretrained("acme/tiny-gpt2", o).catch((x) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect(e.message).toBe(`cannot fetch ${server.url}/acme/tiny-gpt2/resolve/main/model.safetensors: HTTP 503`);
    server.fail.clear();
    await expect(GPT2LMHeadModel.fromPretrained("acme/torch-only", o)).rejects.toThrow(
      new WeightsError(
        "no model.safetensors in acme/torch-only@main (pytorch_model.bin is not supported: convert it to safetensors)",
        ["model.safetensors"],
      ),
    );
    const fresh = mkdtempSync(join(root, "cache-"));
    const ac = new AbortController();
    ac.abort();
    await expect(
      GPT2LMHeadModel.fromPretrained("acme/tiny-gpt2", { endpoint: server.url, cacheDir: fresh, signal: ac.signal }),
    ).rejects.toThrow(/aborted/);
    expect(readdirSync(fresh)).toEqual([]);
  });
});

describe("wasmformer CLI --model owner/name", () => {
  let cli: string;
  beforeAll(() => {
    const tsc = spawnSync(process.execPath, [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", PKG], {
      encoding: "utf8",
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    cli = join(PKG, "dist/cli.js");
  }, 240_000);

  /** Run the CLI without blocking this process (the hub server lives here). */
  const run = (args: string[], env: Record<string, string>) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });

  test("downloads from HF_ENDPOINT into HF_HOME, and the second run needs no server", async () => {
    const home = mkdtempSync(join(root, "hf-home-"));
    const args = ["generate", "--model", "acme/tiny-gpt2", "--prompt", "hello", "-n", "5", "--ignore-eos"];
    const first = await run(args, { HF_ENDPOINT: server.url, HF_HOME: home });
    expect(first.stderr).toMatch(/downloading model\.safetensors \[#+\] 100%/);
    expect(first.status).toBe(0);
    const local = await GPT2LMHeadModel.fromPretrained(gpt2Dir);
    const want = await local.generateAll("hello", { maxNewTokens: 5, stopIds: [] });
    local.dispose();
    expect(first.stdout).toBe(`${want.texts[0]}\n`);
    expect(readdirSync(join(home, "wasmformer", "acme", "tiny-gpt2", "main"))).toContain("model.safetensors");

    const second = await run(args, { HF_ENDPOINT: await deadEndpoint(), HF_HOME: home });
    expect(second.stderr).not.toContain("downloading");
    expect(second.status).toBe(0);
    expect(second.stdout).toBe(first.stdout);

    const failed = await run(["generate", "--model", "acme/tiny-gpt2", "--prompt", "hello"], {
      HF_ENDPOINT: await deadEndpoint(),
      HF_HOME: mkdtempSync(join(root, "hf-home-")),
    });
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain("cannot fetch http://127.0.0.1:");
  }, 60_000);
});
