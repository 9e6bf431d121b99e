/**
 * Loading a Llama-family Hugging Face folder (`LlamaForCausalLM.fromPretrained`,
 * `AutoModelForCausalLM.fromPretrained`) and the `wasmformer generate` CLI on it.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, init, writeSafetensors } from "@wasmformer/core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { type LlamaSpec, makeTinyLlama, refLlamaGreedy } from "./tiny-llama.js";

const PKG = fileURLToPath(new URL("..", import.meta.url));

let root: string;
beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-llama-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function writeFolder(dir: string, spec: LlamaSpec, patch: Record<string, unknown> = {}) {
  const tiny = makeTinyLlama(spec);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...tiny.config, ...patch }));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
  return tiny;
}

describe("Llama folders", () => {
  test("LlamaForCausalLM and AutoModelForCausalLM load a folder; greedy ids = f64 reference", async () => {
    const dir = join(root, "qwen");
    const tiny = writeFolder(dir, { modelType: "qwen2", attentionBias: true, tied: true, seed: 31, eos: [2, 3] });
    const prompt = [5, 6, 7];
    const want = refLlamaGreedy(tiny, prompt, 8);
    expect(want.margin).toBeGreaterThan(1e-3);
    const a = await LlamaForCausalLM.fromPretrained(dir);
    const b = await AutoModelForCausalLM.fromPretrained(dir);
    expect(b).toBeInstanceOf(LlamaForCausalLM);
    expect(a.tokenizer).toBeUndefined();
    for (const m of [a, b])
      expect((await m.generateAll(prompt, { maxNewTokens: 8, stopIds: [] })).ids[0]).toEqual(want.ids);
  });

  test("an unknown model_type is a ConfigError naming it", async () => {
    const dir = join(root, "falcon");
    writeFolder(dir, { seed: 32 }, { model_type: "falcon" });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(ConfigError);
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/model_type.*"falcon"/);
  });
});

describe("wasmformer CLI on a Llama folder", () => {
  let cli: string;
  beforeAll(() => {
    const tsc = spawnSync(process.execPath, [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", PKG], {
      encoding: "utf8",
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    cli = join(PKG, "dist/cli.js");
  }, 240_000);
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000 });

  test("--prompt-ids streams the greedy ids; errors name the field", () => {
    const dir = join(root, "cli-llama");
    const tiny = writeFolder(dir, { seed: 33, P: 32 });
    const want = refLlamaGreedy(tiny, [4, 8, 15], 6);
    expect(want.margin).toBeGreaterThan(1e-3);
    const r = run(["generate", "-m", dir, "--prompt-ids", "4,8,15", "-n", "6", "--ignore-eos", "--no-progress"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${want.ids.join(" ")}\n`);
    const long = run(["generate", "-m", dir, "--prompt-ids", "4,8,15", "-n", "40", "--no-progress"]);
    expect(long.status).toBe(1);
    expect(long.stderr).toMatch(/InputError: .*exceeds max_position_embeddings 32/);
    const bad = join(root, "cli-bad-rope");
    writeFolder(bad, { seed: 33 }, { rope_scaling: { rope_type: "longrope", factor: 2 } });
    const r2 = run(["generate", "-m", bad, "--prompt-ids", "1", "--no-progress"]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/ConfigError: config: rope_scaling\.rope_type/);
  });
});
