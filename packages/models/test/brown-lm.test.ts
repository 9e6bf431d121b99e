/**
 * The embedded Brown-corpus LM (checkpoints/brown-lm): it loads with f16 storage, its greedy text is
 * deterministic and made of Brown-corpus words, its perplexity on held-out documents stays below
 * a bound, the training script's loss falls over a few toy steps, and the CLI runs it by default.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { init } from "@wasmformer/core";
import { AutoModelForCausalLM, generateAll } from "@wasmformer/llm";
import { evaluate } from "@wasmformer/nn";
import { SubwordTokenizer } from "@wasmformer/text";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
// @ts-expect-error: a plain .mjs script module, shared with the training script
import { brownDocuments, brownSentences, splitDocuments } from "../scripts/brown-corpus.mjs";
// @ts-expect-error: a plain .mjs script module, shared with the training script
import { windows } from "../scripts/brown-lm.mjs";
import { modelPath } from "../src/index.js";

const SCRIPT = fileURLToPath(new URL("../scripts/train-brown-lm.mjs", import.meta.url));
const CLI = fileURLToPath(new URL("../../llm/dist/cli.js", import.meta.url));
/** Perplexity bound on the first two held-out documents (53 windows; measured 335.7, see the model card). */
const PERPLEXITY_BOUND = 360;

let folder: string;
let lm: Awaited<ReturnType<typeof AutoModelForCausalLM.fromPretrained>>;
const tmp = mkdtempSync(join(tmpdir(), "brown-lm-"));
beforeAll(async () => {
  await init();
  folder = await modelPath("brown-lm");
  lm = await AutoModelForCausalLM.fromPretrained(folder);
});
afterAll(() => {
  lm?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

const greedyThe = async () =>
  (await generateAll(lm, lm.tokenizer!, ["The"], { maxNewTokens: 16, temperature: 0, stopIds: [] })).texts[0];

describe("brown-lm checkpoint", () => {
  test("a GPT-2 folder with f16 weights and a 4096-token BPE tokenizer", () => {
    const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
    expect(config).toMatchObject({ model_type: "gpt2", vocab_size: 4096, n_layer: 4, n_embd: 128, n_positions: 128 });
    const file = readFileSync(join(folder, "model.safetensors"));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString("utf8"));
    const dtypes = new Set(
      Object.entries(header).flatMap(([k, v]) => (k === "__metadata__" ? [] : [(v as { dtype: string }).dtype])),
    );
    expect([...dtypes]).toEqual(["F16"]);
    const tok = SubwordTokenizer.fromTokenizerJson(readFileSync(join(folder, "tokenizer.json"), "utf8"));
    expect(tok.decode(tok.encodeIds('The jury said, "Fulton County".'))).toBe('The jury said, "Fulton County".');
    for (const f of ["README.md", "generation_config.json"]) expect(existsSync(join(folder, f))).toBe(true);
  });

  test("greedy continuation of 'The' is deterministic and made of Brown-corpus words", async () => {
    const a = await greedyThe();
    expect(await greedyThe()).toBe(a);
    const known = new Set<string>(brownSentences().flat());
    const words = a.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [];
    expect(words.length).toBeGreaterThanOrEqual(5);
    expect(words.filter((w: string) => !known.has(w))).toEqual([]);
  });

  test(`perplexity on two held-out documents is below ${PERPLEXITY_BOUND}`, () => {
    const held = splitDocuments(brownDocuments()).validation.slice(0, 2);
    const tok = SubwordTokenizer.fromTokenizerJson(readFileSync(join(folder, "tokenizer.json"), "utf8"));
    const { out } = windows(tok, held, 128);
    expect(out.length).toBeGreaterThan(20);
    lm.train({ maxBatch: 8, maxSeqLen: 128 });
    const { loss } = evaluate(lm, out, 8);
    lm.eval();
    expect(Math.exp(loss)).toBeLessThan(PERPLEXITY_BOUND);
  });
});

describe("train-brown-lm.mjs", () => {
  test("a few toy steps into a temp dir: the loss falls and the folder loads", async () => {
    const out = join(tmp, "toy");
    const log = execFileSync(
      process.execPath,
      [
        "--experimental-wasm-relaxed-simd",
        SCRIPT,
        ...["--docs", "10", "--vocab", "400", "--layers", "1", "--width", "32", "--heads", "2", "--ctx", "32"],
        ...["--batch", "8", "--lr", "3e-3", "--max-steps", "12", "--log-every", "1", "--out", out],
      ],
      { encoding: "utf8", timeout: 90_000, env: { ...process.env, WASMFORMER_THREADS: "1" } },
    );
    const losses = [...log.matchAll(/step \d+\/12 loss ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(12);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.3);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"])
      expect(existsSync(join(out, f))).toBe(true);
    const toy = await AutoModelForCausalLM.fromPretrained(out);
    expect(toy.tokenizer).toBeDefined();
    toy.dispose();
  });
});

describe("wasmformer CLI", () => {
  test("generate without --model runs brown-lm (the built CLI)", async () => {
    expect(existsSync(CLI)).toBe(true); // `pnpm build` first
    const r = spawnSync(process.execPath, [CLI, "generate", "--prompt", "The", "-n", "16", "--no-progress"], {
      encoding: "utf8",
      timeout: 60_000,
      cwd: tmp,
      env: { ...process.env, WASMFORMER_THREADS: "1" },
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${await greedyThe()}\n`);
  });
});
